"""Selection frequency on real human annotations: CIFAR-10H votes and the 30 CIFAR-10.1 release models.

Expected values are computed here with numpy from the raw files (votes .npy, labels .npy, the release's
prediction JSONs), never from the code under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generalization.analysis import selection_frequency as sf
from generalization.files import DataError


@pytest.fixture(scope="module")
def store(tmp_path_factory, cifar101_release, cifar10_labels_npy):
    from generalization.store.importers import import_cifar101

    root = tmp_path_factory.mktemp("sf") / "store"
    import_cifar101(cifar101_release, root, cifar10_labels=cifar10_labels_npy)
    return root


def test_frequencies_from_votes_match_raw(cifar10h_raw):
    counts, labels, _, freq = cifar10h_raw
    df = sf.frequencies_from_votes(counts, labels)
    assert df["image_id"].tolist() == list(range(10_000))
    np.testing.assert_allclose(df["selection_frequency"].to_numpy(), freq, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(df["num_annotations"].to_numpy(), counts.sum(axis=1))
    assert 47 <= df["num_annotations"].min() and df["num_annotations"].max() <= 63


def test_per_bin_accuracy_equals_numpy_on_raw_files(cifar10h_raw, store):
    counts, labels, preds, freq = cifar10h_raw
    assert len(preds) == 30
    table = sf.accuracy_by_frequency_from_store(store, "cifar10-test", freq)
    assert sorted(table["model"].unique()) == sorted(preds)
    masks = [freq < 0.2, (freq >= 0.2) & (freq < 0.4), (freq >= 0.4) & (freq < 0.6), (freq >= 0.6) & (freq < 0.8),
             freq >= 0.8]  # fmt: skip
    for model, p in preds.items():
        got = table[table["model"] == model].sort_values("bin")
        for b, m in enumerate(masks):
            row = got.iloc[b]
            assert row["n"] == m.sum()
            assert row["correct"] == (p[m] == labels[m]).sum()
            assert row["accuracy"] == pytest.approx(100.0 * (p[m] == labels[m]).mean(), abs=1e-9)
            assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
    # accuracy falls with frequency on average: the finding the figure shows
    mean = table.groupby("bin")["accuracy"].mean().to_numpy()
    assert mean[0] < mean[-1]


def test_quantile_bins_partition_the_set(cifar10h_raw):
    _, labels, preds, freq = cifar10h_raw
    some = {m: preds[m] for m in sorted(preds)[:3]}
    q = sf.accuracy_by_frequency(some, labels, freq, binning="quantile", n_quantiles=10)
    for model, g in q.groupby("model"):
        assert g["n"].sum() == 10_000
        assert g["correct"].sum() == (some[model] == labels).sum()
        assert (g["n"] > 0).all()
    g = q[q["model"] == sorted(some)[0]].sort_values("bin")
    # every image lies inside its bin's edges; exactly 1.0 is the last bin
    assert g["freq_low"].iloc[-1] == 1.0 and g["n"].iloc[-1] == (freq == 1.0).sum()


def test_resample_accuracies_from_predictions(cifar10h_raw):
    _, labels, preds, _ = cifar10h_raw
    some = {m: preds[m] for m in sorted(preds)[:4]}
    ids = np.arange(0, 10_000, 7)
    acc = sf.resample_accuracies(some, labels, ids)
    for _, r in acc.iterrows():
        p = some[r["model"]]
        assert r["correct_new"] == (p[ids] == labels[ids]).sum()
        assert r["gap"] == pytest.approx(100 * (p == labels).mean() - 100 * (p[ids] == labels[ids]).mean())
    with pytest.raises(DataError):
        sf.resample_accuracies(some, labels, [10_000])


def test_subsample_votes_is_seeded_and_valid(cifar10h_raw):
    counts = cifar10h_raw[0][:500]
    a = sf.subsample_votes(counts, 10, seed=1)
    np.testing.assert_array_equal(a, sf.subsample_votes(counts, 10, seed=1))
    assert not np.array_equal(a, sf.subsample_votes(counts, 10, seed=2))
    assert (a.sum(axis=1) == 10).all() and (a <= counts).all() and (a >= 0).all()
    with pytest.raises(DataError, match="fewer than k"):
        sf.subsample_votes(counts, 1000, seed=0)


def test_estimation_bias_sanity(cifar10h_raw):
    counts, labels, _, freq = cifar10h_raw
    # every vote kept: no bias at all
    c = np.array([[7, 3, 0], [10, 0, 0], [2, 2, 6], [0, 5, 5]])
    full = sf.estimation_bias(c, np.array([0, 0, 2, 1]), ks=(10,), seed=0)
    assert np.allclose(full["bias"].dropna(), 0) and np.allclose(full["mean_abs_error"].dropna(), 0)
    # on CIFAR-10H: the overall estimate is nearly unbiased, the error shrinks with k, and images estimated
    # in a low bin are truly better recognised (regression to the mean)
    b = sf.estimation_bias(counts, labels, ks=(3, 10), seed=0)
    overall = b[b["bin"] == -1].set_index("k")
    assert abs(overall.loc[10, "bias"]) < 0.01
    assert overall.loc[3, "mean_abs_error"] > overall.loc[10, "mean_abs_error"]
    assert overall.loc[10, "mean_true"] == pytest.approx(freq.mean())
    low = b[(b["k"] == 10) & (b["bin"].between(0, 3)) & (b["n"] > 0)]
    assert (low["bias"] > 0).all()
    assert low["n"].sum() + b[(b["k"] == 10) & (b["bin"] == 4)]["n"].sum() == 10_000


def test_load_votes_errors(tmp_path):
    bad = tmp_path / "v.npy"
    np.save(bad, np.zeros(5))
    with pytest.raises(DataError, match="v.npy"):
        sf.load_votes(bad)
    np.save(bad, -np.ones((3, 2), dtype=np.int64))
    with pytest.raises(DataError, match="negative"):
        sf.load_votes(bad)
    np.save(bad, np.ones((3, 2), dtype=np.int64))
    with pytest.raises(DataError, match="3 rows"):
        sf.load_votes(bad, num_images=4)


def test_cli_analyze_votes(store, votes_npy, tmp_path, cifar10h_raw):
    from generalization.cli import main

    out = tmp_path / "out"
    assert main(["analyze", "--store", str(store), "--out", str(out), "--n-bootstrap", "10", "--votes",
                 str(votes_npy), "--votes-test-set", "cifar10-test"]) == 0  # fmt: skip
    d = out / "selection-frequency"
    assert (out / "REPORT.md").exists()
    table = pd.read_csv(d / "accuracy_by_frequency.csv")
    assert table["model"].nunique() == 30 and (table.groupby("model")["n"].sum() == 10_000).all()
    assert (d / "accuracy_by_frequency.png").stat().st_size > 10_000
    assert "CC BY-NC-SA 4.0" in (d / "NOTICE.md").read_text()
    assert main(["analyze", "--accuracies", str(out / "accuracies.csv"), "--out", str(tmp_path / "o2"),
                 "--votes", str(votes_npy)]) == 2  # fmt: skip
