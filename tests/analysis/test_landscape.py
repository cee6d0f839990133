"""The landscape of natural shifts on the excerpts of the published tables: baselines fitted on standard
models (checked against numpy), effective robustness, figures, the REPORT.md section."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from generalization.analysis import landscape
from generalization.store import importers
from generalization.store.records import PredictionStore


@pytest.fixture(scope="module")
def excerpt_table(shared_data, tmp_path_factory):
    d = shared_data / "published-results-samples"
    store = PredictionStore(tmp_path_factory.mktemp("landscape") / "s")
    importers.import_testbed(d / "robustness_top1s.csv", store)
    importers.import_timm_tables([*sorted(d.glob("results-*.csv")), d / "model_metadata-in1k.csv"], store)
    return store.accuracy_table()


def _logit(p):
    p = np.asarray(p, dtype=float) / 100
    return np.log(p / (1 - p))


def test_baselines_are_standard_model_logit_fits(excerpt_table, shared_data):
    baselines, per_model, fits = landscape.fit_landscape(excerpt_table, n_bootstrap=50)
    shifts = set(baselines["shift"])
    assert {"imagenet-a", "imagenet-r", "imagenet-sketch", "objectnet-1.0-beta", "imagenetv2-matched-frequency",
            "ytbb-robust_pm0", "imagenet-vid-robust_pm0"} <= shifts  # fmt: skip
    assert "imagenet-c.fog.3_on-disk" not in shifts and "pgd.linf.eps2" not in shifts  # natural shifts only

    # ObjectNet (testbed only), recomputed from the raw wide table with numpy
    wide = pd.read_csv(shared_data / "published-results-samples" / "robustness_top1s.csv")
    types = excerpt_table.drop_duplicates(["source", "model"]).set_index(["source", "model"])["model_type"]
    std = wide[[types.get(("testbed", m), "") == "standard" for m in wide["model"]]]
    std = std[["val-on-objectnet-classes", "objectnet-1.0-beta"]].dropna()
    slope, icpt = np.polyfit(_logit(std["val-on-objectnet-classes"]), _logit(std["objectnet-1.0-beta"]), 1)
    r2 = np.corrcoef(_logit(std["val-on-objectnet-classes"]), _logit(std["objectnet-1.0-beta"]))[0, 1] ** 2
    row = baselines.set_index("shift").loc["objectnet-1.0-beta"]
    assert row["n_standard"] == len(std)
    assert row["slope"] == pytest.approx(slope, abs=2e-3) and row["intercept"] == pytest.approx(icpt, abs=5e-3)
    assert row["r2"] == pytest.approx(r2, abs=2e-3)
    assert row["on_line"] == (r2 >= landscape.ON_LINE_R2)

    # effective robustness = new - baseline prediction at the model's original accuracy
    g = per_model[per_model["shift"] == "objectnet-1.0-beta"]
    x = _logit(g["orig"])
    pred = 100 / (1 + np.exp(-(row["intercept"] + row["slope"] * x)))
    np.testing.assert_allclose(g["effective_robustness"], g["new"] - pred, atol=1e-6)
    # pairs are within a source: ImageNet-A has timm (-clean original) and testbed points
    a = per_model[per_model["shift"] == "imagenet-a"]
    assert set(a["source"]) == {"testbed", "timm"} and (a["original_test_set"] == "val-on-imagenet-a-classes").all()


def test_write_landscape_files_and_report_section(excerpt_table, tmp_path):
    keep = ["imagenet-val", "imagenet-sketch", "val-on-imagenet-r-classes", "imagenet-r", "imagenet-c.fog.3_on-disk"]
    paths, md = landscape.write_landscape(excerpt_table[excerpt_table["test_set"].isin(keep)], tmp_path, n_bootstrap=30)
    assert sorted(p.name for p in paths if p.suffix == ".png") == ["imagenet-r.png", "imagenet-sketch.png", "overview.png"]
    names = {p.name for p in paths}
    assert {"baselines.csv", "effective_robustness.csv", "imagenet-r.csv", "imagenet-sketch.csv"} <= names
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert "## The distribution-shift landscape" in md and "**Not on one line** (R² < 0.9)" in md
    assert "ImageNet-R" in md and "**Models trained with more data rise above the line**" in md
    base = pd.read_csv(tmp_path / "landscape" / "baselines.csv")
    r = base.set_index("shift").loc["imagenet-r"]
    assert f"{r['r2']:.2f}" in md
    # nothing beyond the paper's pairs from the paper's release: no landscape
    only_v2 = excerpt_table[excerpt_table["test_set"].isin(["imagenet-val", "imagenetv2-matched-frequency"])]
    only_v2 = only_v2.assign(source="imagenetv2-release")
    assert landscape.write_landscape(only_v2, tmp_path / "none") == ([], "")


def test_types_inferred_when_the_table_has_none(excerpt_table):
    """An accuracies.csv without model_type (the committed results/): types come from the model names."""
    b1, _, _ = landscape.fit_landscape(excerpt_table, n_bootstrap=0)
    b2, _, _ = landscape.fit_landscape(excerpt_table.drop(columns=["model_type", "model_type_detail"]), n_bootstrap=0)
    r1, r2 = b1.set_index("shift").loc["objectnet-1.0-beta"], b2.set_index("shift").loc["objectnet-1.0-beta"]
    assert (r1["n_standard"], r1["slope"]) == (r2["n_standard"], r2["slope"])


def test_landscape_csvs_neutralise_formulas_and_keep_ten_digits(excerpt_table, tmp_path):
    """A model named like a spreadsheet formula is written with a leading ' (files.csv_text); the numbers keep
    10 significant digits (files.CSV_FLOAT_FORMAT), checked against the in-memory fit."""
    keep = ["imagenet-val", "imagenet-sketch"]
    table = excerpt_table[excerpt_table["test_set"].isin(keep)].copy()
    src, model = table[table["test_set"] == "imagenet-sketch"][["source", "model"]].iloc[0]
    evil = '=HYPERLINK("http://x","y")'
    table.loc[(table["source"] == src) & (table["model"] == model), "model"] = evil
    paths, _ = landscape.write_landscape(table, tmp_path, n_bootstrap=0)
    csvs = [p for p in paths if p.suffix == ".csv"]
    assert {p.name for p in csvs} == {"baselines.csv", "effective_robustness.csv", "imagenet-sketch.csv"}
    for p in csvs:
        cells = [c for row in csv.reader(p.read_text(encoding="utf-8").splitlines()) for c in row]
        assert not [c for c in cells if c.startswith(("=", "+", "@"))], p.name
    for name in ("effective_robustness.csv", "imagenet-sketch.csv"):
        models = pd.read_csv(tmp_path / "landscape" / name)["model"]
        assert (models == "'" + evil).sum() == 1 and evil not in set(models)
    base = pd.read_csv(tmp_path / "landscape" / "baselines.csv").set_index("shift")
    expect, _, _ = landscape.fit_landscape(table, n_bootstrap=0)
    expect = expect.set_index("shift")
    for col in ("slope", "intercept", "r2"):
        np.testing.assert_allclose(base.loc[expect.index, col], expect[col], rtol=1e-9, atol=0)
