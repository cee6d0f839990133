"""REPORT.md of the selection-frequency study: conclusions follow the data, the regenerate command follows the
inputs as given (never a path baked into the package)."""

from __future__ import annotations

import numpy as np
import pytest

from generalization.analysis import selection_frequency as sf
from generalization.analysis.trends import fit_trend
from generalization.sampler.strategies import shifted_targets
from generalization.workflows import selection_frequency_study as study
from generalization.workflows import selection_frequency_text as sft

EDGES = (0.2, 0.4, 0.6, 0.8)  # the sampler's bins


def _study(accuracy_rises: bool) -> dict:
    """A small synthetic study: 10 classes x 60 images, 20 votes each, 6 models whose chance of being right rises
    (or falls) with the image's selection frequency; run through the study's own pipeline into a report context."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 60)
    n = len(labels)
    right = np.where(rng.random(n) < 0.5, 20, rng.integers(0, 20, n))  # half the images unanimous
    counts = np.zeros((n, 10), dtype=np.int64)
    counts[np.arange(n), labels] = right
    counts[np.arange(n), (labels + 1) % 10] += 20 - right
    freq = sf.frequencies_from_votes(counts, labels)
    f = freq["selection_frequency"].to_numpy()
    ease = f if accuracy_rises else 1.0 - f
    preds = {}
    for j, base in enumerate(np.linspace(0.5, 0.95, 6)):
        correct = rng.random(n) < base * (0.3 + 0.7 * ease)
        preds[f"m{j}"] = np.where(correct, labels, (labels + 1) % 10)
    by_bin = sf.accuracy_by_frequency(preds, labels, f, binning="sampler")
    seeds = (0, 1)
    sweeps = {}
    for name, edges, ps in (
        ("sampler bins", EDGES, (0.0, 0.2, 0.4)),
        ("fine bins", sf.FINE_EDGES, (0.0, 0.4, 0.8)),
    ):
        s, _ = study.shift_sweep(preds, labels, freq, ps, per_class=20, edges=edges, seeds=seeds, n_bootstrap=20)
        sweeps[name] = s
    orig = np.linspace(80, 95, 6)
    ref_fit = fit_trend(orig, 1.6 * orig - 60 + rng.normal(0, 0.3, 6), "linear", n_bootstrap=50, seed=0)
    res = study.frequency_shifted_resample(freq, shifted_targets(freq, 20, 0.4, edges=sf.FINE_EDGES), seed=0,
                                           edges=sf.FINE_EDGES)  # fmt: skip
    acc = sf.resample_accuracies(preds, labels, study._resample_ids(res))
    example = {"strength": 0.4, "acc": acc, "fits": sf.fit_resample(acc, n_bootstrap=20, seed=0)}
    bias = sf.estimation_bias(counts, labels, (3, 10), seed=0)
    matching = study.matching_bias(preds, labels, counts, ks=(3, 10), strengths=(0.0, 0.1), per_class=20, seeds=seeds,
                                   n_bootstrap=20)  # fmt: skip
    return sft.report_context(freq, counts.shape, by_bin, sweeps, {"gap": 7.5}, ref_fit, example, bias, matching,
                              n_models=len(preds), per_class=20, seeds=seeds, n_bootstrap=20,
                              fine_edges=sf.FINE_EDGES, command="generalization selection-frequency-report …",
                              python_only=["ks=(3, 10)"])  # fmt: skip


@pytest.fixture(scope="module")
def rising() -> tuple[dict, str]:
    ctx = _study(True)
    return ctx, sft.render_report(ctx)


@pytest.fixture(scope="module")
def falling() -> tuple[dict, str]:
    ctx = _study(False)
    return ctx, sft.render_report(ctx)


def test_accuracy_direction_follows_the_data(rising, falling):
    (ctx, text), (ctx2, text2) = rising, falling
    assert "Mean accuracy over the 6 models rises with selection frequency" in text
    assert "Mean accuracy over the 6 models falls with selection frequency" in text2
    # the flipped study is flipped all the way down: the gap of a downward shift shrinks instead of growing
    assert ctx["findings"]["gap_trend"] == "grows" and "The gap grows with the shift" in text
    assert ctx2["findings"]["gap_trend"] == "falls" and "The gap falls with the shift" in text2
    assert "reproduces part of the size of the gap" in text and "but not the gap" in text2
    for t in (text, text2):
        assert "../shared" not in t and "{{" not in t and "{%" not in t
        assert t.count("CC BY-NC-SA 4.0") == 2  # the licence note at the top and at the foot
        assert "Called from Python with ks=(3, 10)" in t
        assert "\n\n\n" not in t


def test_accuracy_direction_counts(rising):
    ctx, _ = rising
    a = ctx["accuracy"]
    # independently: the models' mean accuracy in the lowest and the top non-empty bins
    assert (
        a["low"] < a["top"] and a["n_models"] == 6 and a["low_label"] == "<0.2" and a["top_label"] == "≥0.8"
    )


def test_trend_word():
    assert sft.trend_word([0, 1, 2, 3], [1.0, 2.0, 2.5, 4.0]) == "grows"
    assert sft.trend_word([0, 1, 2, 3], [4.0, 2.0, 1.5, 1.0]) == "falls"
    assert sft.trend_word([0, 1, 2, 3], [1.0, 3.0, 0.5, 2.0]) == "shows no steady trend"
    assert sft.trend_word([0, 1, 2], [1.0, 1.0, 1.0]) == "shows no steady trend"


def test_regenerate_command_keeps_the_paths_as_given():
    cmd = sft.regenerate_command("votes dir/c.npy", "/data/CIFAR-10.1", "labels.npy", "out",
                                 options={"--per-class": 50, "--seeds": (0, 1)})  # fmt: skip
    assert cmd.splitlines() == [
        "generalization selection-frequency-report --votes 'votes dir/c.npy' \\",
        "    --cifar101-release /data/CIFAR-10.1 \\",
        "    --cifar10-labels labels.npy \\",
        "    --per-class 50 \\",
        "    --seeds 0 1 \\",
        "    --out out",
    ]


def test_matching_verdict_flips_with_the_seed_noise():
    import pandas as pd

    rows = []
    for seed in range(4):
        for p in (0.0, 0.1):
            # k = 3: the same clear bias at every seed; k = 10: a bias that changes sign from seed to seed
            rows.append({"k": 3, "strength": p, "seed": seed, "missing": 5, "bias_frequency": 0.02,
                         "bias_gap": -1.5 + 0.01 * seed})  # fmt: skip
            rows.append({"k": 10, "strength": p, "seed": seed, "missing": 0, "bias_frequency": -0.001,
                         "bias_gap": 0.5 * (-1) ** seed})  # fmt: skip
    v = {d["k"]: d for d in sft._matching_verdicts(pd.DataFrame(rows), n_seeds=4)}
    assert (
        v[3]["beyond_noise"] and v[3]["easier"] == "easier" and v[3]["gap"] == "smaller" and v[3]["shortfall"]
    )
    assert not v[10]["beyond_noise"] and not v[10]["shortfall"]
    # the spread is the seed-to-seed sd per strength, averaged over strengths
    assert v[10]["sd"] == pytest.approx(np.std([0.5, -0.5, 0.5, -0.5], ddof=1))


def test_write_report_on_cifar10h(votes_npy, cifar101_release, cifar10_labels_npy, tmp_path):
    """The real study, cut small: the regenerate command repeats the inputs as given, options that differ from the
    defaults included, and the numbers the text states agree with numpy on the raw files."""
    from generalization.workflows.selection_frequency_study import write_report

    out = tmp_path / "sf"
    write_report(votes_npy, cifar101_release, cifar10_labels_npy, out, per_class=20, seeds=(0,), n_bootstrap=10,
                 strengths=(0.0, 0.1), fine_strengths=(0.0, 0.4), ks=(3, 10), bias_strengths=(0.0,))  # fmt: skip
    text = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "../shared" not in text  # the fixtures' paths are absolute
    assert (f"generalization selection-frequency-report --votes {votes_npy} \\\n    --cifar101-release "
            f"{cifar101_release} \\\n    --cifar10-labels {cifar10_labels_npy} \\\n    --per-class 20 \\\n"
            f"    --seeds 0 \\\n    --n-bootstrap 10 \\\n    --out {out}\n") in text  # fmt: skip
    assert "strengths=(0.0, 0.1), fine_strengths=(0.0, 0.4), ks=(3, 10), bias_strengths=(0.0,)" in text
    counts = np.load(votes_npy, allow_pickle=False)
    labels = np.load(cifar10_labels_npy, allow_pickle=False)
    f = counts[np.arange(len(labels)), labels] / counts.sum(axis=1)
    assert (
        f"median frequency {np.median(f):.3f}" in text and f"{100 * np.mean(f == 1):.1f} % exactly 1" in text
    )
    n_models = len(list((cifar101_release / "model_predictions" / "original_predictions").glob("*.json")))
    assert f"the {n_models} CIFAR-10.1 release models" in text
    assert "rises with selection frequency" in text and "**k = 10**: images whose 10-vote estimate" in text
