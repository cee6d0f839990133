"""Fits, bands, residuals and rank agreement, checked against scipy on the same points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from generalization.analysis import trends as analysis
from generalization.files import DataError
from generalization.store import importers
from generalization.store.records import PredictionStore


@pytest.fixture(scope="module")
def table(imagenetv2_release, cifar101_release, cifar10_labels_npy, tmp_path_factory) -> pd.DataFrame:
    store = PredictionStore(tmp_path_factory.mktemp("store"))
    importers.import_imagenetv2(imagenetv2_release, store)
    importers.import_cifar101(cifar101_release, store, cifar10_labels=cifar10_labels_npy)
    return store.accuracy_table()


def _points(table, original, new):
    a = table[(table["test_set"] == original)].set_index(["source", "model"])
    b = table[(table["test_set"] == new) & (table["flag"] == "")].set_index(["source", "model"])
    a = a[a["flag"] == ""]
    idx = a.index.intersection(b.index)
    return (a.loc[idx, "top1_correct"] / a.loc[idx, "n"]).to_numpy(), (b.loc[idx, "top1_correct"] / b.loc[idx, "n"]).to_numpy()


@pytest.mark.parametrize("original,new", [("imagenet-val", "imagenetv2-matched-frequency"), ("cifar10-test", "cifar10.1-v6")])
def test_fits_equal_linregress(table, original, new):
    fits_df, _ = analysis.fit_trends(table, n_bootstrap=0)
    x, y = _points(table, original, new)
    transforms = {"linear": lambda p: 100 * p, "probit": stats.norm.ppf, "logit": lambda p: np.log(p / (1 - p))}
    for scale, f in transforms.items():
        ref = stats.linregress(f(x), f(y))
        row = fits_df[(fits_df["original"] == original) & (fits_df["new"] == new) & (fits_df["scale"] == scale)].iloc[0]
        assert row["n_models"] == len(x)
        assert row["slope"] == pytest.approx(ref.slope, rel=1e-12)
        assert row["intercept"] == pytest.approx(ref.intercept, rel=1e-12, abs=1e-12)
        assert row["r"] == pytest.approx(ref.rvalue, rel=1e-12)


def test_flagged_rows_not_fitted(table):
    fits_df, _ = analysis.fit_trends(table, n_bootstrap=0, scales=("linear",))
    row = fits_df[fits_df["new"] == "imagenetv2-matched-frequency"].iloc[0]
    assert row["n_models"] == 66  # 67 release models less fv_16k


def test_bootstrap_band_seeded_and_sane():
    rng = np.random.default_rng(1)
    x = rng.uniform(60, 80, 40)
    y = 1.1 * x - 20 + rng.normal(0, 0.5, 40)
    a = analysis.fit_trend(x, y, "linear", n_bootstrap=500, seed=3)
    b = analysis.fit_trend(x, y, "linear", n_bootstrap=500, seed=3)
    c = analysis.fit_trend(x, y, "linear", n_bootstrap=500, seed=4)
    np.testing.assert_array_equal(a.band_low, b.band_low)
    assert not np.array_equal(a.band_low, c.band_low)
    line = a.predict(a.band_x)
    assert np.all(a.band_low <= line + 1e-9) and np.all(line <= a.band_high + 1e-9)
    # the band is narrowest near the centre of the data
    width = a.band_high - a.band_low
    assert np.argmin(width) not in (0, len(width) - 1)
    # independent bootstrap of the slope with the same seed and resampling scheme
    idx = np.random.default_rng(3).integers(0, 40, size=(500, 40))
    slopes = [stats.linregress(x[i], y[i]).slope for i in idx]
    assert a.slope_ci_low == pytest.approx(np.percentile(slopes, 2.5))
    assert a.slope_ci_high == pytest.approx(np.percentile(slopes, 97.5))


def test_residuals_and_prediction(table):
    _, fits = analysis.fit_trends(table, n_bootstrap=100)
    res = analysis.residuals(table, fits, scale="linear")
    fit = fits[("cifar10-test", "cifar10.1-v6", "linear")]
    r = res[(res["new_test_set"] == "cifar10.1-v6") & (res["model"] == "resnet_basic_110")].iloc[0]
    assert r["predicted_new"] == pytest.approx(fit.intercept + fit.slope * r["orig"])
    assert r["effective_robustness"] == pytest.approx(r["new"] - r["predicted_new"])
    assert r["predicted_new_low"] <= r["predicted_new"] <= r["predicted_new_high"]
    # residuals of the fitted points sum to zero (least squares with an intercept)
    pts = res[(res["new_test_set"] == "cifar10.1-v6") & (res["source"] == "cifar10.1-release")]
    assert pts["effective_robustness"].sum() == pytest.approx(0, abs=1e-8)


def test_model_with_only_original_accuracy_is_predicted(table):
    extra = pd.DataFrame([{"source": "evaluate", "model": "cifar10/resnet20", "test_set": "cifar10-test",
                           "n": 10000, "top1_correct": 9173, "flag": ""}])  # fmt: skip
    from generalization.metrics import accuracy_table_from_counts

    t = pd.concat([table, accuracy_table_from_counts(extra)], ignore_index=True)
    _, fits = analysis.fit_trends(t, n_bootstrap=200)
    res = analysis.residuals(t, fits)
    r = res[(res["model"] == "cifar10/resnet20") & (res["new_test_set"] == "cifar10.1-v6")].iloc[0]
    assert np.isnan(r["new"]) and np.isnan(r["effective_robustness"])
    fit = fits[("cifar10-test", "cifar10.1-v6", "linear")]
    assert r["predicted_new"] == pytest.approx(fit.intercept + fit.slope * 91.73)


def test_rank_agreement_matches_scipy(table):
    ranks = analysis.rank_agreement(table)
    x, y = _points(table, "cifar10-test", "cifar10.1-v4")
    row = ranks[ranks["new"] == "cifar10.1-v4"].iloc[0]
    assert row["spearman_rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert row["kendall_tau"] == pytest.approx(stats.kendalltau(x, y).statistic)


def test_paired_gap(table):
    p = analysis.paired_accuracies(table, "imagenet-val", "imagenetv2-matched-frequency").set_index("model")
    assert p.loc["resnet152", "gap"] == pytest.approx(78.312 - 67.02)
    assert p.loc["resnet152", "gap_ci_low"] < p.loc["resnet152", "gap"] < p.loc["resnet152", "gap_ci_high"]


def test_probit_axis_transform_round_trip():
    pct = np.array([0.5, 10, 50, 90, 99.5])
    for scale in analysis.SCALES:
        np.testing.assert_allclose(analysis.from_scale(analysis.to_scale(pct, scale), scale), pct)


def test_read_accuracies_errors(tmp_path):
    p = tmp_path / "accuracies.csv"
    p.write_text("source,model,test_set,n\na,b,c,1\n")
    with pytest.raises(DataError, match="accuracies.csv: missing column.*top1_correct"):
        analysis.read_accuracies(p)
    with pytest.raises(DataError, match="file not found"):
        analysis.read_accuracies(tmp_path / "nope.csv")
