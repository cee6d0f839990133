"""The CIFAR-10H selection-frequency study, a workflow across the store, the sampler and the analysis.

Frequency-shifted resamples of a test set drawn with the sampler's MatchedFrequency
(:func:`generalization.sampler.strategies.matched_frequency`, unchanged) toward per-class target histograms
(:func:`generalization.sampler.strategies.shifted_targets`), scored with the analysis
(:func:`frequency_shifted_resample`, :func:`shift_sweep`, :func:`matching_bias`), and the study's report writer
:func:`write_report`: import the CIFAR-10.1 release into a store, run every analysis on CIFAR-10H, write the
tables, figures and REPORT.md of ``results/selection-frequency`` (its text:
:mod:`generalization.workflows.selection_frequency_text`). The per-image analyses it runs (frequencies,
accuracy by frequency, estimation bias) are :mod:`generalization.analysis.selection_frequency`.

All randomness is seeded (``random.Random`` inside MatchedFrequency, ``numpy.random.default_rng`` for the vote
subsampling), and nothing iterates a set, so results do not depend on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.selection_frequency import (
    CIFAR10H_LICENCE_NOTE,
    FINE_EDGES,
    estimation_bias,
    fit_resample,
    frequencies_from_votes,
    licence_corner,
    load_votes,
    resample_accuracies,
    store_predictions,
    subsample_votes,
    write_accuracy_by_frequency,
    write_licence_notice,
)
from ..files import atomic_write_text, csv_text
from ..metrics import clopper_pearson
from ..sampler.strategies import SampleResult, matched_frequency, shifted_targets, write_outputs
from ..selection_frequency import HISTOGRAM_BINS
from ..sources import CIFAR101_RELEASE
from .selection_frequency_text import regenerate_command, render_report, report_context

__all__ = [
    "frequency_shifted_resample",
    "shift_sweep",
    "matching_bias",
    "write_report",
]


# ------------------------------------------------------------------------- frequency-shifted resamples


def _candidates(frequencies: pd.DataFrame) -> pd.DataFrame:
    cols = ["image_id", "class", "selection_frequency"] + (["num_annotations"] if "num_annotations" in frequencies
                                                            else [])  # fmt: skip
    return frequencies[cols].reset_index(drop=True)


def frequency_shifted_resample(
    frequencies: pd.DataFrame,
    targets: pd.DataFrame,
    *,
    seed: int,
    edges: Sequence[float] = HISTOGRAM_BINS,
    parameters: Mapping[str, Any] | None = None,
) -> SampleResult:
    """MatchedFrequency (unchanged) with the test set itself as the candidate pool.

    ``frequencies`` (from :func:`generalization.analysis.selection_frequency.frequencies_from_votes`) are the
    candidates; ``targets`` a class x bin table (the sampler's
    :func:`~generalization.sampler.strategies.shifted_targets`, its
    :func:`~generalization.sampler.strategies.target_histograms` of another set, or its
    :func:`~generalization.sampler.strategies.read_targets`). No upward sampling: a bin without enough
    candidates is a shortfall, listed in the result's ``shortfalls`` and the manifest.
    """
    return matched_frequency(_candidates(frequencies), targets, seed=seed, edges=edges, parameters=parameters)


def _true_mean(frequencies: pd.DataFrame, ids) -> float:
    return float(frequencies["selection_frequency"].to_numpy()[np.asarray(ids, dtype=np.int64)].mean())


def _resample_ids(result: SampleResult) -> np.ndarray:
    return np.asarray([int(im) for im, _ in result.manifest["image_filenames"]], dtype=np.int64)


def shift_sweep(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    frequencies: pd.DataFrame,
    strengths: Sequence[float],
    *,
    per_class: int = 200,
    edges: Sequence[float] = HISTOGRAM_BINS,
    seeds: Sequence[int] = (0,),
    n_bootstrap: int = 200,
    match_on: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Frequency-shifted resamples for every (strength, seed) and the models' accuracy on each.

    The target is the test set's own per-class histogram (full-vote ``frequencies``) shifted by each
    strength (:func:`generalization.sampler.strategies.shifted_targets`). With ``match_on`` (e.g. k-vote
    estimates), MatchedFrequency draws on those frequencies instead, while the reported true frequency stays the
    full-vote one.

    Returns ``(summary, per_model)``. ``summary`` has one row per (strength, seed): ``n_images``,
    ``missing`` (shortfall, images), ``short_bins``, ``mean_frequency`` (true mean frequency of the
    resample), ``mean_gap``/``median_gap``/``min_gap``/``max_gap`` (points), ``slope_linear`` (with
    bootstrap ``slope_linear_ci_low/high``), ``intercept_linear``, ``slope_probit`` (+ CI),
    ``intercept_probit``. ``per_model`` is :func:`generalization.analysis.selection_frequency.resample_accuracies` per
    (strength, seed).
    """
    drawn_on = frequencies if match_on is None else match_on
    rows, per_model = [], []
    for p in strengths:
        targets = shifted_targets(frequencies, per_class, float(p), edges=edges)
        for seed in seeds:
            res = frequency_shifted_resample(drawn_on, targets, seed=int(seed), edges=edges,
                                             parameters={"shift": f"down:{float(p):g}"})  # fmt: skip
            ids = _resample_ids(res)
            acc = resample_accuracies(predictions, labels, ids)
            fits = fit_resample(acc, n_bootstrap=n_bootstrap, seed=int(seed))
            lin, pro = fits["linear"], fits["probit"]
            rows.append({
                "strength": float(p), "seed": int(seed), "per_class": int(per_class), "n_images": len(ids),
                "missing": int(res.shortfalls["missing"].sum()), "short_bins": len(res.shortfalls),
                "mean_frequency": _true_mean(frequencies, ids),
                "mean_gap": float(acc["gap"].mean()), "median_gap": float(acc["gap"].median()),
                "min_gap": float(acc["gap"].min()), "max_gap": float(acc["gap"].max()),
                "slope_linear": lin.slope, "slope_linear_ci_low": lin.slope_ci_low,
                "slope_linear_ci_high": lin.slope_ci_high, "intercept_linear": lin.intercept,
                "slope_probit": pro.slope, "slope_probit_ci_low": pro.slope_ci_low,
                "slope_probit_ci_high": pro.slope_ci_high, "intercept_probit": pro.intercept,
            })  # fmt: skip
            per_model.append(acc.assign(strength=float(p), seed=int(seed)))
    cols = ["strength", "seed", "model"]
    pm = pd.concat(per_model, ignore_index=True)
    return pd.DataFrame(rows), pm[cols + [c for c in pm.columns if c not in cols]]


def matching_bias(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    counts: np.ndarray,
    *,
    ks: Sequence[int] = (3, 5, 10),
    strengths: Sequence[float] = (0.0, 0.1),
    per_class: int = 200,
    edges: Sequence[float] = HISTOGRAM_BINS,
    seeds: Sequence[int] = (0,),
    n_bootstrap: int = 200,
) -> pd.DataFrame:
    """What matching on k-vote estimates does to the matched set's true frequency and the measured gap.

    For each strength, the target is the full-vote histogram shifted by that strength; MatchedFrequency
    draws once on the full-vote frequencies (``k = 0`` rows, the reference) and once on k-vote estimates
    per k (votes subsampled with seed ``seed + k``). Returns the :func:`shift_sweep` summary columns plus
    ``k``, ``bias_frequency`` (true mean frequency, k-vote match - full-vote match) and ``bias_gap``
    (mean gap, k-vote match - full-vote match, points).
    """
    labels = np.asarray(labels).astype(np.int64)
    full = frequencies_from_votes(counts, labels)
    out = []
    for k in (0, *ks):
        rows_k = []
        for seed in seeds:
            match_on = None if k == 0 else frequencies_from_votes(subsample_votes(counts, int(k), seed=int(seed) + int(k)),
                                                                 labels)  # fmt: skip
            s, _ = shift_sweep(predictions, labels, full, strengths, per_class=per_class, edges=edges, seeds=(seed,),
                               n_bootstrap=n_bootstrap, match_on=match_on)  # fmt: skip
            rows_k.append(s)
        out.append(pd.concat(rows_k, ignore_index=True).assign(k=int(k)))
    df = pd.concat(out, ignore_index=True)
    ref = df[df["k"] == 0].set_index(["strength", "seed"])
    key = pd.MultiIndex.from_frame(df[["strength", "seed"]])
    df["bias_frequency"] = df["mean_frequency"].to_numpy() - ref["mean_frequency"].reindex(key).to_numpy()
    df["bias_gap"] = df["mean_gap"].to_numpy() - ref["mean_gap"].reindex(key).to_numpy()
    cols = ["k", "strength", "seed"]
    return df[cols + [c for c in df.columns if c not in cols]]


# ------------------------------------------------------------------------------------------- figures


def _plot_sweep(sweeps: dict[str, pd.DataFrame], reference: dict | None, note: str | None):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    styles = [("tab:blue", "o"), ("tab:orange", "s"), ("tab:green", "^"), ("tab:purple", "D")]
    for (name, s), (color, marker) in zip(sweeps.items(), styles, strict=False):
        g = s.groupby("strength")
        x = np.asarray(sorted(s["strength"].unique()))
        mean_gap = g["mean_gap"].mean().to_numpy()
        lo, hi = g["min_gap"].min().to_numpy(), g["max_gap"].max().to_numpy()
        short = g["missing"].mean().to_numpy() > 0
        axes[0].plot(x, mean_gap, color=color, marker=marker, label=f"{name}: mean over models")
        axes[0].fill_between(x, lo, hi, color=color, alpha=0.15, lw=0, label=f"{name}: range over models")
        axes[0].scatter(x[short], mean_gap[short], s=80, facecolors="none", edgecolors="red", zorder=5)
        sl = g["slope_linear"].mean().to_numpy()
        axes[1].errorbar(x, sl, yerr=[sl - g["slope_linear_ci_low"].mean().to_numpy(),
                                      g["slope_linear_ci_high"].mean().to_numpy() - sl],
                         color=color, marker=marker, capsize=2, label=name)  # fmt: skip
        axes[2].plot(x, g["mean_frequency"].mean().to_numpy(), color=color, marker=marker, label=name)
    axes[0].scatter([], [], s=80, facecolors="none", edgecolors="red", label="target not met (shortfall)")
    axes[1].axhline(1.0, color="black", ls="--", lw=1, label="slope 1 (y = x)")
    if reference:
        if "gap" in reference:
            axes[0].axhline(reference["gap"], color="tab:red", ls=":", lw=1.2,
                            label=f"CIFAR-10.1 v6 mean gap ({reference['gap']:.1f})")  # fmt: skip
        if "slope" in reference:
            axes[1].axhline(reference["slope"], color="tab:red", ls=":", lw=1.2,
                            label=f"CIFAR-10.1 v6 linear slope ({reference['slope']:.2f})")  # fmt: skip
    axes[0].set_ylabel("accuracy gap, full test set - resample (points)")
    axes[1].set_ylabel("linear slope, resample vs full test set")
    axes[2].set_ylabel("mean true selection frequency of the resample")
    titles = ["gap vs shift strength", "trend slope (95 % bootstrap CI)", "how hard the resample is"]
    for ax, t in zip(axes, titles, strict=True):
        ax.set_xlabel("shift strength p (share of each bin's mass moved one bin down)")
        ax.set_title(t, fontsize=10)
        ax.grid(True, color="0.9", lw=0.6)
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    licence_corner(fig, note)
    return fig


def _plot_resample_fit(acc: pd.DataFrame, fit, reference: pd.DataFrame | None, title: str, note: str | None):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.4))
    pts = [acc] + ([reference] if reference is not None else [])
    lo = min(float(min(p["new_ci_low"].min(), p["orig_ci_low"].min())) for p in pts)
    hi = max(float(max(p["new_ci_high"].max(), p["orig_ci_high"].max())) for p in pts)
    lo, hi = lo - 1, min(hi + 1, 100)
    d = np.linspace(lo, hi, 50)
    ax.plot(d, d, ls="--", color="black", lw=1, label="y = x")
    grid = fit.band_x
    blo, bhi = fit.band_at(grid)
    ax.fill_between(grid, blo, bhi, color="tab:red", alpha=0.18, lw=0, label="95 % bootstrap band")
    ax.plot(grid, fit.predict(grid), color="tab:red", lw=1.5,
            label=f"linear fit to resample: slope {fit.slope:.2f}")  # fmt: skip
    for df, color, marker, label in (
        (acc, "tab:blue", "o", "frequency-shifted resample"),
        (reference, "tab:green", "s", "CIFAR-10.1 v6 (released)"),
    ):
        if df is None:
            continue
        ax.errorbar(df["orig"], df["new"], xerr=[df["orig"] - df["orig_ci_low"], df["orig_ci_high"] - df["orig"]],
                    yerr=[df["new"] - df["new_ci_low"], df["new_ci_high"] - df["new"]], fmt=marker, ms=4,
                    color=color, elinewidth=0.6, capsize=0, alpha=0.9, label=f"{label} ({len(df)} models)")  # fmt: skip
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("CIFAR-10 test set top-1 accuracy (%)")
    ax.set_ylabel("new test set top-1 accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, color="0.9", lw=0.6)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    licence_corner(fig, note)
    return fig


def _plot_estimation_bias(bias: pd.DataFrame, matching: pd.DataFrame, note: str | None):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    styles = {3: ("tab:red", "o"), 5: ("tab:orange", "s"), 10: ("tab:blue", "^"), 0: ("black", "D")}
    ax = axes[0]
    ax.plot([0, 1], [0, 1], ls="--", color="black", lw=1, label="y = x (no bias)")
    for k, g in bias[bias["bin"] >= 0].groupby("k"):
        g = g[g["n"] > 0]
        c, m = styles.get(int(k), ("grey", "x"))
        ax.plot(g["mean_estimated"], g["mean_true"], color=c, marker=m, label=f"k = {k} votes")
        for _, r in g[g["bin"] < g["bin"].max()].iterrows():  # the crowded top bin is left unlabelled
            ax.annotate(f"{int(r['n'])}", (r["mean_estimated"], r["mean_true"]), xytext=(3, -9),
                        textcoords="offset points", fontsize=6, color=c)  # fmt: skip
    ax.set_xlabel("mean k-vote estimate in the estimated bin")
    ax.set_ylabel("mean full-vote (true) frequency of those images")
    ax.set_title("regression to the mean: images per estimated sampler bin", fontsize=10)
    for col, ax, ylabel, title in (
        ("bias_frequency", axes[1], "true mean frequency: k-vote match - full-vote match",
         "matched set's true frequency"),
        ("bias_gap", axes[2], "mean gap: k-vote match - full-vote match (points)", "measured gap"),
    ):  # fmt: skip
        ax.axhline(0, color="black", lw=1, ls="--")
        for k, g in matching[matching["k"] > 0].groupby("k"):
            c, m = styles.get(int(k), ("grey", "x"))
            gg = g.groupby("strength")[col]
            x = np.asarray(sorted(g["strength"].unique()))
            mean, sd = gg.mean().to_numpy(), gg.std().fillna(0).to_numpy()
            ax.errorbar(
                x, mean, yerr=sd, color=c, marker=m, capsize=2, label=f"k = {k} votes (± sd over seeds)"
            )
        ax.set_xlabel("shift strength p of the target")
        ax.set_ylabel(ylabel)
        ax.set_title(f"bias of matching on k-vote estimates: {title}", fontsize=10)
    for ax in axes:
        ax.grid(True, color="0.9", lw=0.6)
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    licence_corner(fig, note)
    return fig


# -------------------------------------------------------------------------------------------- report


def _csv(df: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, csv_text(df))


#: write_report's parameters that the command line does not expose, with their defaults
_PYTHON_ONLY_DEFAULTS = {
    "strengths": (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3),
    "fine_strengths": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
    "ks": (3, 5, 10),
    "bias_strengths": (0.0, 0.05, 0.1),
}


def write_report(
    votes: str | os.PathLike,
    cifar101_release: str | os.PathLike,
    cifar10_labels: str | os.PathLike,
    out: str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    per_class: int = 200,
    strengths: Sequence[float] = _PYTHON_ONLY_DEFAULTS["strengths"],
    fine_strengths: Sequence[float] = _PYTHON_ONLY_DEFAULTS["fine_strengths"],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    ks: Sequence[int] = _PYTHON_ONLY_DEFAULTS["ks"],
    bias_strengths: Sequence[float] = _PYTHON_ONLY_DEFAULTS["bias_strengths"],
    n_bootstrap: int = 200,
) -> list[Path]:
    """Import the CIFAR-10.1 release into a store, run every analysis on CIFAR-10H, write ``out``.

    Writes the accuracy-by-frequency tables and figure, ``shift_sweep.csv`` (+ per model), the resample
    fit figure, ``estimation_bias.csv``, ``matching_bias.csv``, their figures, an example resample
    (manifest, shortfalls, audit figure from the sampler), ``NOTICE.md`` and ``REPORT.md``. REPORT.md is
    rendered by :mod:`generalization.workflows.selection_frequency_text`; its regenerate command is spelled from
    the arguments as given (paths unchanged). Returns the paths.
    """
    import tempfile

    from ..analysis.plots import save_figure
    from ..analysis.trends import fit_trend
    from ..store.importers import import_cifar101
    from ..store.records import PredictionStore

    given_out, given_store = out, store  # as the caller spelled them, for the regenerate command
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory()
        store = Path(tmp.name) / "store"
    try:
        st = PredictionStore(store)
        if not any(r.source == CIFAR101_RELEASE for r in st.records()):
            import_cifar101(cifar101_release, st, cifar10_labels=cifar10_labels)
        labels = st.labels("cifar10-test")
        preds = store_predictions(st, "cifar10-test", sources=[CIFAR101_RELEASE])
        ref_preds = store_predictions(st, "cifar10.1-v6", sources=[CIFAR101_RELEASE])
        ref_labels = st.labels("cifar10.1-v6")
    finally:
        if tmp is not None:
            tmp.cleanup()
    counts = load_votes(votes, num_images=len(labels))
    freq = frequencies_from_votes(counts, labels)
    f = freq["selection_frequency"].to_numpy()
    note = CIFAR10H_LICENCE_NOTE
    written = write_accuracy_by_frequency(preds, labels, f, out)
    by_bin = pd.read_csv(out / "accuracy_by_frequency.csv")

    # CIFAR-10.1 v6 as the reference: the released gap and linear slope of the same 30 models
    ref = pd.DataFrame({"model": sorted(preds)})
    ref["n_orig"] = len(labels)
    ref["correct_orig"] = [int((preds[m] == labels).sum()) for m in ref["model"]]
    ref["n_new"] = len(ref_labels)
    ref["correct_new"] = [int((ref_preds[m] == ref_labels).sum()) for m in ref["model"]]
    for which in ("orig", "new"):
        k, n = ref[f"correct_{which}"].to_numpy(float), ref[f"n_{which}"].to_numpy(float)
        lo, hi = clopper_pearson(k, n)
        ref[which], ref[f"{which}_ci_low"], ref[f"{which}_ci_high"] = 100 * k / n, 100 * lo, 100 * hi
    ref["gap"] = ref["orig"] - ref["new"]
    ref_fit = fit_trend(ref["orig"], ref["new"], "linear", n_bootstrap=n_bootstrap, seed=0)
    reference = {"gap": float(ref["gap"].mean()), "slope": ref_fit.slope}

    sweeps, per_models = {}, []
    for name, edges, ps in (
        ("sampler bins", HISTOGRAM_BINS, strengths),
        ("fine bins", FINE_EDGES, fine_strengths),
    ):
        s, pm = shift_sweep(preds, labels, freq, ps, per_class=per_class, edges=edges, seeds=seeds,
                            n_bootstrap=n_bootstrap)  # fmt: skip
        sweeps[name] = s.assign(bins=name)
        per_models.append(pm.assign(bins=name))
    sweep = pd.concat(sweeps.values(), ignore_index=True)
    written.append(_csv(sweep, out / "shift_sweep.csv"))
    pm = pd.concat(per_models, ignore_index=True)
    pm = pm[pm["seed"] == seeds[0]]  # one seed keeps the file small; the summary has every seed
    written.append(_csv(pm[["bins", "strength", "seed", "model", "orig", "n_new", "correct_new", "new", "gap"]],
                        out / "shift_sweep_per_model.csv"))  # fmt: skip
    written.append(save_figure(_plot_sweep(sweeps, reference, note), out / "shift_sweep.png"))

    # the strongest fine-bin shift without a shortfall, seed 0: its resample, fit and sampler outputs
    fine = sweeps["fine bins"]
    ok = fine[(fine["seed"] == seeds[0]) & (fine["missing"] == 0)]
    p_show = float(ok["strength"].max()) if len(ok) else float(fine_strengths[0])
    targets = shifted_targets(freq, per_class, p_show, edges=FINE_EDGES)
    res = frequency_shifted_resample(freq, targets, seed=int(seeds[0]), edges=FINE_EDGES,
                                     parameters={"shift": f"down:{p_show:g}", "licence": note})  # fmt: skip
    example = out / f"example_resample_fine_p{p_show:g}"
    written += write_outputs(res, example)
    written.append(write_licence_notice(example, note))
    acc = resample_accuracies(preds, labels, _resample_ids(res))
    fits = fit_resample(acc, n_bootstrap=n_bootstrap, seed=0)
    title = (
        f"Frequency-shifted resample of CIFAR-10 (fine bins, p = {p_show:g}, {len(acc)} models)\n"
        f"linear slope {fits['linear'].slope:.2f}, probit slope {fits['probit'].slope:.2f}; "
        f"CIFAR-10.1 v6 linear slope {ref_fit.slope:.2f}"
    )
    written.append(
        save_figure(_plot_resample_fit(acc, fits["linear"], ref, title, note), out / "resample_fit.png")
    )

    bias = estimation_bias(counts, labels, ks, seed=0)
    written.append(_csv(bias, out / "estimation_bias.csv"))
    matching = matching_bias(preds, labels, counts, ks=ks, strengths=bias_strengths, per_class=per_class,
                             seeds=seeds, n_bootstrap=n_bootstrap)  # fmt: skip
    written.append(_csv(matching, out / "matching_bias.csv"))
    written.append(save_figure(_plot_estimation_bias(bias, matching, note), out / "estimation_bias.png"))

    given = {"per_class": per_class, "seeds": tuple(seeds), "n_bootstrap": n_bootstrap}
    defaults = {k: inspect.signature(write_report).parameters[k].default for k in given}
    command = regenerate_command(votes, cifar101_release, cifar10_labels, given_out, store=given_store, options={
        f"--{k.replace('_', '-')}": v for k, v in given.items() if v != defaults[k]})  # fmt: skip
    python_only = {
        "strengths": strengths,
        "fine_strengths": fine_strengths,
        "ks": ks,
        "bias_strengths": bias_strengths,
    }
    python_only = [
        f"{k}={tuple(v)!r}" for k, v in python_only.items() if tuple(v) != _PYTHON_ONLY_DEFAULTS[k]
    ]
    context = report_context(freq, counts.shape, by_bin, sweeps, reference, ref_fit,
                             {"strength": p_show, "acc": acc, "fits": fits}, bias, matching, n_models=len(preds),
                             per_class=per_class, seeds=seeds, n_bootstrap=n_bootstrap, fine_edges=FINE_EDGES,
                             command=command, python_only=python_only)  # fmt: skip
    written.append(atomic_write_text(out / "REPORT.md", render_report(context)))
    return written
