"""Every published table imports in bulk: every testbed column, any timm table, model types; validation,
reruns, conflicts and two concurrent importers."""

from __future__ import annotations

import multiprocessing as mp
import shutil

import numpy as np
import pandas as pd
import pytest

from generalization.cli import main
from generalization.files import DataError
from generalization.store import importers
from generalization.store.records import PredictionStore, RecordExistsError
from generalization.store.tables import put_accuracy_rows
from generalization.test_sets import CATALOG


def _samples(shared_data):
    return shared_data / "published-results-samples"


def test_every_testbed_cell_and_timm_row_becomes_a_row(shared_data, tmp_path):
    d = _samples(shared_data)
    store = PredictionStore(tmp_path / "s")
    timm_files = sorted(d.glob("results-*.csv"))
    assert len(timm_files) == 8
    r1 = importers.import_testbed(d / "robustness_top1s.csv", store)
    r2 = importers.import_timm_tables([*timm_files, d / "model_metadata-in1k.csv"], store)
    t = store.accuracy_table()

    wide = pd.read_csv(d / "robustness_top1s.csv")
    cells = wide.drop(columns="model").notna().to_numpy().sum()
    tb = t[t["source"] == "testbed"]
    assert r1.written == len(tb) == cells
    # each cell, by its column: the stored percentage is the cell within half a count
    long = wide.melt(id_vars="model", var_name="column", value_name="pct").dropna()
    long["test_set"] = long["column"].map(importers.TESTBED_SETTINGS)
    assert long["test_set"].notna().all()
    m = long.merge(tb, on=["model", "test_set"], how="left", validate="one_to_one")
    n = m["test_set"].map(lambda s: CATALOG[s].num_images)
    assert (np.abs(m["top1"] - m["pct"]) <= 50 / n + 1e-9).all()
    # the renames: testbed val / -format-val are our imagenet-val / imagenetv2-*; raw ImageNetV2 -as-released
    assert importers.TESTBED_SETTINGS["val"] == "imagenet-val"
    assert importers.TESTBED_SETTINGS["imagenetv2-matched-frequency"] == "imagenetv2-matched-frequency-as-released"

    rows = sum(len(pd.read_csv(f).dropna(subset=["top1"])) for f in timm_files)
    tm = t[t["source"] == "timm"]
    assert r2.written == len(tm) == rows
    for f in timm_files:
        raw = pd.read_csv(f)
        ts = importers.timm_test_set(f)
        got = tm[tm["test_set"] == ts].set_index("model").loc[raw["model"] + "@" + raw["img_size"].astype(str)]
        np.testing.assert_allclose(got["top1"], raw["top1"], atol=50 / CATALOG[ts].num_images + 1e-9)
        np.testing.assert_allclose(got["top5"], raw["top5"], atol=50 / CATALOG[ts].num_images + 1e-9)
    assert importers.timm_test_set(d / "results-imagenet-a-clean.csv") == "val-on-imagenet-a-classes"

    # model types: the testbed's own categories; timm's tag
    types = t.drop_duplicates(["source", "model"]).set_index(["source", "model"])["model_type"]
    assert types[("testbed", "instagram-resnext101_32x48d")] == "more_data"
    assert types[("testbed", "resnet50")] == "standard"
    assert types[("testbed", "resnet50_trained_on_SIN")] == "robustness_intervention"
    assert types[("testbed", "resnet18_50k_99_epochs")] == "other"
    assert types[("timm", "eva02_large_patch14_448.mim_m38m_ft_in22k_in1k@448")] == "more_data"
    assert set(t["model_type"]) <= {"standard", "more_data", "robustness_intervention", "other", ""}

    # a rerun is a no-op: nothing written, the table files untouched
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "s" / "tables").glob("*.csv")}
    r3 = importers.import_testbed(d / "robustness_top1s.csv", store)
    r4 = importers.import_timm_tables([*timm_files, d / "model_metadata-in1k.csv"], store)
    assert (r3.written, r3.unchanged, r4.written, r4.unchanged) == (0, cells, 0, rows)
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "s" / "tables").glob("*.csv")}
    # one table file per source, no lock file per record
    files = sorted(p.name for p in (tmp_path / "s").rglob("*") if p.is_file())
    assert files == ["store.json", "testbed.csv", "testbed.lock", "timm.csv", "timm.lock"]


def test_columns_option_and_unknown_column(shared_data, tmp_path, capsys):
    d = _samples(shared_data)
    s = tmp_path / "s"
    assert main(["import", "testbed", str(d / "robustness_top1s.csv"), "--store", str(s), "--columns",
                 "imagenet-a,val-on-imagenet-a-classes"]) == 0  # fmt: skip
    t = PredictionStore(s).accuracy_table()
    wide = pd.read_csv(d / "robustness_top1s.csv")
    assert set(t["test_set"]) == {"imagenet-a", "val-on-imagenet-a-classes"}
    assert len(t) == wide[["imagenet-a", "val-on-imagenet-a-classes"]].notna().to_numpy().sum()
    capsys.readouterr()
    assert main(["import", "testbed", str(d / "robustness_top1s.csv"), "--store", str(s), "--columns", "imagenet-q"]) == 2
    err = capsys.readouterr().err
    assert "unknown testbed column(s) imagenet-q; known:" in err and "objectnet-1.0-beta" in err
    assert "imagenet-c.<corruption>" in err


@pytest.mark.parametrize(
    "table, message",
    [
        ("model,img_size,top1,top5\nm,224,abc,90\n", r"line 2, column top1: 'abc' is not a number"),
        ("model,img_size,top1,top5\nm,224,80,85.1%\n", r"line 2, column top5: '85.1%' is not a number"),
        ("model,img_size,top1,top5\nm,224,80,90\nn,224,80,79.5\n", r"line 3, columns top1/top5: top-5 79.5 is below top-1 80"),
        ("model,img_size,top1,top5\nm,224,80,90\n ,224,70,80\n", r"line 3, column model: empty model name"),
        ("model,img_size,top1,top5\nm,224.5,80,90\n", r"line 2, column img_size: '224.5' is not an integer"),
        ("model,img_size,top1,top5\nm,224,180,190\n", r"line 2, column top1: '180' is outside 0..100"),
    ],
)
def test_timm_cells_are_validated(tmp_path, table, message):
    f = tmp_path / "results-imagenet-a.csv"
    f.write_text(table)
    with pytest.raises(DataError, match=rf"results-imagenet-a.csv: {message}"):
        importers.import_timm_tables([f], tmp_path / "s")
    assert not (tmp_path / "s" / "tables").exists()  # nothing written


def test_timm_file_names_and_a_third_file(shared_data, tmp_path):
    d = _samples(shared_data)
    odd = tmp_path / "my-results.csv"
    shutil.copy(d / "results-imagenet.csv", odd)
    with pytest.raises(DataError, match=r"my-results.csv: not one of timm's result tables \(known: results-imagenet.csv"):
        importers.import_timm_tables([odd], tmp_path / "s")
    # reproduce's --timm-results hands every file over: a third one is imported, not dropped
    three = [d / "results-imagenet.csv", d / "results-imagenetv2-matched-frequency.csv", d / "results-sketch.csv"]
    rep = importers.import_timm_tables(three, tmp_path / "s")
    t = PredictionStore(tmp_path / "s").accuracy_table()
    assert set(t["test_set"]) == {"imagenet-val", "imagenetv2-matched-frequency", "imagenet-sketch"}
    assert rep.written == len(t)
    tb = tmp_path / "robustness_top1s.csv"
    tb.write_text("model,val,imagenet-a\nm1,76.1,abc\n")
    with pytest.raises(DataError, match=r"robustness_top1s.csv: line 2, column imagenet-a: 'abc' is not a number"):
        importers.import_testbed(tb, tmp_path / "s")


def test_conflicts_overwrite_and_damage(tmp_path):
    store = PredictionStore(tmp_path / "s")
    rows = pd.DataFrame({"model": ["a", "b"], "test_set": "imagenet-a", "n": 7500, "top1_correct": [100, 200]})
    assert put_accuracy_rows(store, "pub", rows) == (2, 0)
    assert put_accuracy_rows(store, "pub", rows) == (0, 2)
    changed = rows.assign(top1_correct=[100, 201])
    with pytest.raises(RecordExistsError, match=r"1 row\(s\) differ.*\(pub, b, imagenet-a\): top-1 200/7500 stored vs 201/7500"):
        put_accuracy_rows(store, "pub", changed)
    assert put_accuracy_rows(store, "pub", changed, overwrite=True) == (1, 1)
    t = store.accuracy_table()
    assert t.set_index("model").loc["b", "top1_correct"] == 201
    # a per-record JSON of the same source and key is respected
    store.put(source="pub", model="c", test_set="imagenet-a", n=7500, top1_correct=5)
    more = pd.DataFrame({"model": ["c"], "test_set": "imagenet-a", "n": 7500, "top1_correct": [6]})
    with pytest.raises(RecordExistsError):
        put_accuracy_rows(store, "pub", more)
    assert put_accuracy_rows(store, "pub", more.assign(top1_correct=5)) == (0, 1)
    assert len(store.accuracy_table()) == 3
    # a damaged table is refused on read, naming the file
    path = tmp_path / "s" / "tables" / "pub.csv"
    path.write_text(path.read_text().replace(",201,", ",202,"))
    with pytest.raises(DataError, match=r"pub.csv: content does not match its checksum"):
        store.accuracy_table()


def _import_columns(args):
    csv, store, cols = args
    importers.import_testbed(csv, store, columns=cols)


def test_two_concurrent_importers_keep_both(shared_data, tmp_path):
    d = _samples(shared_data)
    wide = pd.read_csv(d / "robustness_top1s.csv")
    cols = [c for c in wide.columns if c != "model"]
    halves = [cols[::2], cols[1::2]]
    ctx = mp.get_context("fork")  # two real processes; fork keeps the test fast (no re-import)
    with ctx.Pool(2) as pool:
        pool.map(_import_columns, [(d / "robustness_top1s.csv", tmp_path / "s", h) for h in halves])
    t = PredictionStore(tmp_path / "s").accuracy_table()
    assert len(t) == wide[cols].notna().to_numpy().sum()
