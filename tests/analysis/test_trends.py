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


FISHER_VECTORS = {"fv_4k", "fv_16k", "fv_64k"}  # the release's non-CNN models, left out of the paper's fits


def _points(table, original, new, exclude=()):
    a = table[(table["test_set"] == original)].set_index(["source", "model"])
    b = table[(table["test_set"] == new) & (table["flag"] == "")].set_index(["source", "model"])
    a = a[a["flag"] == ""]
    idx = a.index.intersection(b.index)
    idx = idx[~idx.get_level_values("model").isin(list(exclude))]
    return (a.loc[idx, "top1_correct"] / a.loc[idx, "n"]).to_numpy(), (b.loc[idx, "top1_correct"] / b.loc[idx, "n"]).to_numpy()


@pytest.mark.parametrize("model_set,exclude", [("paper", FISHER_VECTORS), ("release", ())])
@pytest.mark.parametrize("original,new", [("imagenet-val", "imagenetv2-matched-frequency"), ("cifar10-test", "cifar10.1-v6")])
def test_fits_equal_linregress_on_the_named_set(table, original, new, model_set, exclude):
    fits_df, _ = analysis.fit_trends(table, n_bootstrap=0, model_set=model_set)
    x, y = _points(table, original, new, exclude)
    transforms = {"linear": lambda p: 100 * p, "probit": stats.norm.ppf, "logit": lambda p: np.log(p / (1 - p))}
    for scale, f in transforms.items():
        ref = stats.linregress(f(x), f(y))
        row = fits_df[(fits_df["original"] == original) & (fits_df["new"] == new) & (fits_df["scale"] == scale)].iloc[0]
        assert row["model_set"] == model_set
        assert row["n_models"] == len(x)
        assert row["slope"] == pytest.approx(ref.slope, rel=1e-12)
        assert row["intercept"] == pytest.approx(ref.intercept, rel=1e-12, abs=1e-12)
        assert row["r"] == pytest.approx(ref.rvalue, rel=1e-12)


def test_default_is_the_papers_imagenet_fit(table):
    """The paper: slope about 1.1, 95 % bootstrap CI about [1.07, 1.19], intercept CI about [-26.0, -17.8]."""
    fits_df, fits = analysis.fit_trends(table, n_bootstrap=0, scales=("linear",))
    row = fits_df[fits_df["new"] == "imagenetv2-matched-frequency"].iloc[0]
    assert row["model_set"] == "paper" and row["n_models"] == 64
    assert row["slope"] == pytest.approx(1.110, abs=0.01)
    assert row["intercept"] == pytest.approx(-20.26, abs=0.01)
    x, y = _points(table, "imagenet-val", "imagenetv2-matched-frequency", FISHER_VECTORS)
    fit = analysis.fit_trend(100 * x, 100 * y, "linear", n_bootstrap=100_000, seed=0)
    assert fit.slope_ci_low < 1.19 and fit.slope_ci_high > 1.07  # overlaps the paper's interval
    assert fit.intercept_ci_low < -17.8 and fit.intercept_ci_high > -26.0
    members = {m for _, m in fits[("imagenet-val", "imagenetv2-matched-frequency", "linear")].members}
    assert not members & FISHER_VECTORS and len(members) == 64


def test_model_set_from_list_file_and_errors(table, tmp_path):
    names = ["resnet50", "resnet101", "resnet152", "vgg16", "alexnet"]
    fits_df, _ = analysis.fit_trends(table, n_bootstrap=0, scales=("linear",), model_set=names)
    row = fits_df[fits_df["new"] == "imagenetv2-matched-frequency"].iloc[0]
    assert row["n_models"] == 5 and row["model_set"].startswith("custom(")
    x, y = _points(table, "imagenet-val", "imagenetv2-matched-frequency")
    f = tmp_path / "mine.txt"
    f.write_text("# my models\n" + "\n".join(names) + "\n")
    fits_file, _ = analysis.fit_trends(table, n_bootstrap=0, scales=("linear",), model_set=str(f))
    assert fits_file.iloc[0]["model_set"] == "file:mine.txt"
    assert fits_file.iloc[0]["slope"] == pytest.approx(fits_df.iloc[0]["slope"])
    assert analysis.get_model_set(",".join(names)).models == tuple(sorted(names))
    with pytest.raises(DataError, match="unknown model set 'nope'"):
        analysis.get_model_set("nope")
    fits_all, _ = analysis.fit_trends(table, n_bootstrap=0, scales=("linear",), model_set="all")
    assert fits_all.iloc[0]["n_models"] == len(x) == 67


def test_flagged_rows_not_fitted(table):
    t = table.copy()
    t.loc[(t["model"] == "resnet50") & (t["test_set"] == "imagenetv2-matched-frequency"), "flag"] = "suspect: test"
    fits_df, _ = analysis.fit_trends(t, n_bootstrap=0, scales=("linear",), model_set="release")
    row = fits_df[fits_df["new"] == "imagenetv2-matched-frequency"].iloc[0]
    assert row["n_models"] == 66  # 67 release models less the flagged one


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


def test_linear_residual_and_prediction_interval_columns(table):
    _, fits = analysis.fit_trends(table, n_bootstrap=100)
    res = analysis.residuals(table, fits)
    fit = fits[("cifar10-test", "cifar10.1-v6", "linear")]
    r = res[(res["new_test_set"] == "cifar10.1-v6") & (res["model"] == "resnet_basic_110")].iloc[0]
    assert r["linear_residual"] == pytest.approx(r["new"] - (fit.intercept + fit.slope * r["orig"]))
    # every model, with both accuracies too, gets a prediction interval on the probit trend
    pfit = fits[("cifar10-test", "cifar10.1-v6", "probit")]
    assert r["prediction_scale"] == "probit" and r["prediction_model_set"] == "paper"
    expect = 100 * stats.norm.cdf(pfit.intercept + pfit.slope * stats.norm.ppf(r["orig"] / 100))
    assert r["predicted_new"] == pytest.approx(expect)
    assert r["predicted_new_low"] < r["predicted_new"] < r["predicted_new_high"]
    assert res["predicted_new"].notna().all() and not res.loc[res["source"] == "cifar10.1-release", "extrapolated"].any()
    # residuals of the fitted points sum to zero (least squares with an intercept)
    pts = res[(res["new_test_set"] == "cifar10.1-v6") & (res["source"] == "cifar10.1-release")]
    assert pts["linear_residual"].sum() == pytest.approx(0, abs=1e-8)


def _logit(pct):
    p = np.asarray(pct, dtype=float) / 100
    return np.log(p / (1 - p))


def test_effective_robustness_equals_an_independent_computation(table):
    """Taori et al.: logit baseline on standard models, back to percent, NaN outside the range (+ margin)."""
    from generalization.metrics import accuracy_table_from_counts

    orig, new = "imagenet-val", "imagenetv2-matched-frequency"
    extra = []  # published-table-like rows: metadata says which are standard; one row carries none
    for model, a, b, mtype in [("std_a", 35000, 5800, "standard"), ("std_b", 42000, 7300, "standard"),
                               ("more", 44000, 8000, "more_data"), ("unknown", 40000, 6900, ""),
                               ("near_chance", 300, 20, "standard"), ("far", 49000, 9500, "more_data")]:  # fmt: skip
        for test_set, n, k in ((orig, 50000, a), (new, 10000, b)):
            extra.append({"source": "testbed", "model": model, "test_set": test_set, "n": n, "top1_correct": k,
                          "model_type": mtype})  # fmt: skip
    t = pd.concat([table.assign(model_type=""), accuracy_table_from_counts(pd.DataFrame(extra)).assign(flag="")],
                  ignore_index=True)  # fmt: skip
    _, fits = analysis.fit_trends(t, n_bootstrap=0)
    res = analysis.residuals(t, fits)
    res = res[res["new_test_set"] == new].set_index(["source", "model"])

    # independently: the standard models are the release CNNs (by rule) and the testbed rows marked standard
    acc = {}
    for r in t.itertuples():
        acc.setdefault((r.source, r.model), {})[r.test_set] = 100 * r.top1_correct / r.n
    std = [k for k in acc if (k[0] == "imagenetv2-release" and k[1] not in FISHER_VECTORS)
           or k in {("testbed", "std_a"), ("testbed", "std_b"), ("testbed", "near_chance")}]  # fmt: skip
    xs = np.array([acc[k][orig] for k in std])
    ys = np.array([acc[k][new] for k in std])
    slope, intercept = np.polyfit(_logit(xs), _logit(ys), 1)
    lo, hi = xs.min() - 5, xs.max() + 5
    assert res["in_er_baseline"].sum() == len(std)
    for k in [("testbed", "more"), ("testbed", "unknown"), ("testbed", "std_a"), ("imagenetv2-release", "resnet50"),
              ("imagenetv2-release", "fv_4k"), ("testbed", "far"), ("testbed", "near_chance")]:  # fmt: skip
        x, y = acc[k][orig], acc[k][new]
        expect = y - 100 / (1 + np.exp(-(intercept + slope * _logit(x)))) if lo <= x <= hi else np.nan
        got = res.loc[k, "effective_robustness"]
        assert (np.isnan(got) and np.isnan(expect)) or got == pytest.approx(expect, abs=1e-9), k
    assert np.isnan(res.loc[("testbed", "far"), "effective_robustness"])  # 98 %: beyond the baseline's range
    assert res.loc[("testbed", "unknown"), "standard_basis"] == "no metadata"
    assert not res.loc[("testbed", "unknown"), "in_er_baseline"]
    assert res.loc[("imagenetv2-release", "resnet50"), "model_type"] == "standard"


def test_near_chance_models_get_no_effective_robustness(table):
    """Without metadata, only the release CNNs make the baseline; a near-chance model lies outside it."""
    from generalization.metrics import accuracy_table_from_counts

    rows = [{"source": "testbed", "model": "2_epochs", "test_set": "imagenet-val", "n": 50000, "top1_correct": 7000},
            {"source": "testbed", "model": "2_epochs", "test_set": "imagenetv2-matched-frequency", "n": 10000,
             "top1_correct": 1390}]  # fmt: skip
    t = pd.concat([table, accuracy_table_from_counts(pd.DataFrame(rows)).assign(flag="")], ignore_index=True)
    _, fits = analysis.fit_trends(t, n_bootstrap=0)
    res = analysis.residuals(t, fits)
    r = res[(res["model"] == "2_epochs") & (res["new_test_set"] == "imagenetv2-matched-frequency")].iloc[0]
    assert np.isnan(r["effective_robustness"]) and r["extrapolated"] and not r["in_er_baseline"]
    assert 0 <= r["predicted_new_low"] < r["predicted_new_high"] <= 100


def test_prediction_interval_coverage_on_a_simulated_probit_trend():
    """Known probit-linear trend, models scattered about it, binomial test sets: 95 % PIs cover ~95 %."""
    rng = np.random.default_rng(7)
    a, b, tau, m, n_orig, n_new = -0.33, 0.97, 0.04, 60, 50_000, 10_000
    covered, total = 0, 0
    for _ in range(300):
        z = rng.uniform(0.0, 1.0, m + 50)  # probit of the true original accuracy: 50 % to 84 %
        zt = a + b * z + rng.normal(0, tau, m + 50)  # each model's own deviation from the trend
        orig = 100 * rng.binomial(n_orig, stats.norm.cdf(z)) / n_orig
        new = 100 * rng.binomial(n_new, stats.norm.cdf(zt)) / n_new
        fit = analysis.fit_trend(orig[:m], new[:m], "probit", n_new=np.full(m, n_new), n_bootstrap=0)
        _, lo, hi = fit.prediction_interval(orig[m:], n_new)
        covered += int(((new[m:] >= lo) & (new[m:] <= hi)).sum())
        total += 50
    assert 0.93 <= covered / total <= 0.97


def test_bootstrap_weights_are_the_seeded_resamples():
    w = analysis.bootstrap_weights(10, 1000, 5)
    assert w.shape == (1000, 10) and (w.sum(axis=1) == 10).all()
    idx = np.random.default_rng(5).integers(0, 10, size=(1000, 10))
    np.testing.assert_array_equal(w[3], np.bincount(idx[3], minlength=10))


def test_model_with_only_original_accuracy_is_predicted(table):
    extra = pd.DataFrame([{"source": "evaluate", "model": "cifar10/resnet20", "test_set": "cifar10-test",
                           "n": 10000, "top1_correct": 9173, "flag": ""}])  # fmt: skip
    from generalization.metrics import accuracy_table_from_counts

    t = pd.concat([table, accuracy_table_from_counts(extra)], ignore_index=True)
    _, fits = analysis.fit_trends(t, n_bootstrap=200)
    res = analysis.residuals(t, fits)
    r = res[(res["model"] == "cifar10/resnet20") & (res["new_test_set"] == "cifar10.1-v6")].iloc[0]
    assert np.isnan(r["new"]) and np.isnan(r["effective_robustness"])
    fit = fits[("cifar10-test", "cifar10.1-v6", "probit")]
    assert r["predicted_new"] == pytest.approx(100 * stats.norm.cdf(fit.intercept + fit.slope * stats.norm.ppf(0.9173)))
    assert r["predicted_new_low"] < r["predicted_new"] < r["predicted_new_high"]


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
