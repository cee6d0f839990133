"""Frequency-shifted resampling for the CIFAR-10H selection-frequency study: shifted target histograms
(:func:`shift_histogram`, :func:`shifted_targets`, :func:`read_targets`), resamples drawn with the sampler's
own strategies (:func:`frequency_shifted_resample`, :func:`resample_accuracies`, :func:`fit_resample`,
:func:`shift_sweep`) and the bias of estimating frequencies from few votes (:func:`subsample_votes`,
:func:`estimation_bias`, :func:`matching_bias`). Moved out of
:mod:`generalization.analysis.selection_frequency` (frequencies, bins, accuracy by frequency) to keep
modules short.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import DataError
from ..metrics import clopper_pearson
from ..sampler.strategies import (
    HISTOGRAM_BINS,
    SampleResult,
    histogram_bins,
    largest_remainder,
    matched_frequency,
)
from .selection_frequency import _bin_labels, frequencies_from_votes

__all__ = [
    "shift_histogram",
    "shifted_targets",
    "read_targets",
    "frequency_shifted_resample",
    "resample_accuracies",
    "fit_resample",
    "shift_sweep",
    "subsample_votes",
    "estimation_bias",
    "matching_bias",
]


def shift_histogram(hist, strength: float) -> np.ndarray:
    """Move ``strength`` of every bin's mass one bin down (bin 0 keeps its own), exactly.

    Returns integer weights (the histogram times 10**6), to be scaled with
    :func:`generalization.sampler.strategies.largest_remainder`; ``strength = 0`` gives the histogram times 10**6.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"shift strength must lie in [0, 1], got {strength}")
    h = np.asarray(hist, dtype=np.int64)
    scale = 10**6
    moved = int(round(strength * scale))
    out = h * (scale - moved)
    out[:-1] += h[1:] * moved
    out[0] += h[0] * moved
    return out


def shifted_targets(
    frequencies: pd.DataFrame,
    per_class: int,
    shift: float | str = 0.0,
    *,
    edges: Sequence[float] = HISTOGRAM_BINS,
) -> pd.DataFrame:
    """Per-class target histograms: the set's own histogram with a named shift, scaled to ``per_class``.

    ``shift`` is a strength p in [0, 1] or ``"down:p"``: move p of each bin's mass one bin down
    (:func:`shift_histogram`). ``frequencies`` has ``class`` and ``selection_frequency``. Returns a class
    x bin DataFrame for :func:`generalization.sampler.strategies.matched_frequency`.
    """
    if isinstance(shift, str):
        kind, _, value = shift.partition(":")
        if kind != "down" or not value:
            raise ValueError(f"unknown shift {shift!r} (use 'down:P', e.g. 'down:0.2')")
        shift = float(value)
    f = frequencies[frequencies["selection_frequency"].notna()]
    nb = len(edges) + 1
    bins = histogram_bins(f["selection_frequency"].to_numpy(), edges)
    hist = pd.crosstab(f["class"].to_numpy(), bins).reindex(columns=range(nb), fill_value=0).sort_index()
    rows = {cls: largest_remainder(shift_histogram(h.to_numpy(), float(shift)), per_class)
            for cls, h in hist.iterrows()}  # fmt: skip
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(range(nb))).astype(np.int64)
    out.index.name = "class"
    return out


def read_targets(path: str | os.PathLike, *, edges: Sequence[float] = HISTOGRAM_BINS) -> pd.DataFrame:
    """A target file: CSV with ``class`` and one integer column per bin (``0`` … ``len(edges)``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    df = pd.read_csv(path)
    nb = len(edges) + 1
    cols = [str(b) for b in range(nb)]
    missing = [c for c in ["class", *cols] if c not in df.columns]
    if missing:
        raise DataError(f"{path}: target table lacks column(s) {missing} (needs class, {', '.join(cols)})")
    vals = df[cols].apply(pd.to_numeric, errors="coerce")
    if vals.isna().any().any() or (vals < 0).any().any() or (vals != vals.round()).any().any():
        raise DataError(f"{path}: target counts must be non-negative whole numbers")
    if df["class"].duplicated().any():
        raise DataError(
            f"{path}: duplicate classes {sorted(df.loc[df['class'].duplicated(), 'class'].tolist())}"
        )
    out = vals.astype(np.int64)
    out.columns = list(range(nb))
    out.index = df["class"]
    return out.sort_index()


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

    ``frequencies`` (from :func:`frequencies_from_votes`) are the candidates; ``targets`` a class x bin
    table (:func:`shifted_targets`, :func:`generalization.sampler.strategies.target_histograms` of another set, or
    :func:`read_targets`). No upward sampling: a bin without enough candidates is a shortfall, listed in
    the result's ``shortfalls`` and the manifest.
    """
    return matched_frequency(_candidates(frequencies), targets, seed=seed, edges=edges, parameters=parameters)


def resample_accuracies(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    image_ids: Sequence[int],
    *,
    level: float = 0.95,
) -> pd.DataFrame:
    """Each model's top-1 on the full test set and on the resample (rows ``image_ids``), and the gap.

    Returns, per model (sorted): ``model``, ``n_orig``, ``correct_orig``, ``orig``, ``orig_ci_low``,
    ``orig_ci_high``, ``n_new``, ``correct_new``, ``new``, ``new_ci_low``, ``new_ci_high``, ``gap``
    (orig - new, points). Accuracies in percent, Clopper-Pearson intervals.
    """
    labels = np.asarray(labels).astype(np.int64)
    idx = np.asarray(image_ids, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(labels)):
        raise DataError("resample image ids must be row indices of the test set")
    rows = []
    for model in sorted(predictions):
        p = np.asarray(predictions[model])
        p = p[:, 0] if p.ndim == 2 else p
        ok = p == labels
        rows.append((model, len(ok), int(ok.sum()), len(idx), int(ok[idx].sum())))
    df = pd.DataFrame(rows, columns=["model", "n_orig", "correct_orig", "n_new", "correct_new"])
    for which in ("orig", "new"):
        k, n = df[f"correct_{which}"].to_numpy(float), df[f"n_{which}"].to_numpy(float)
        lo, hi = clopper_pearson(k, n, level)
        df[which] = 100.0 * k / np.maximum(n, 1)
        df[f"{which}_ci_low"], df[f"{which}_ci_high"] = 100.0 * lo, 100.0 * hi
    df["gap"] = df["orig"] - df["new"]
    return df[
        [
            "model",
            "n_orig",
            "correct_orig",
            "orig",
            "orig_ci_low",
            "orig_ci_high",
            "n_new",
            "correct_new",
            "new",
            "new_ci_low",
            "new_ci_high",
            "gap",
        ]
    ]


def fit_resample(
    acc: pd.DataFrame, *, n_bootstrap: int = 1000, seed: int = 0, scales=("linear", "probit")
) -> dict:
    """Linear and probit trend fits of resample vs original accuracy (:func:`generalization.analysis.trends.fit_trend`)."""
    from .trends import fit_trend

    return {s: fit_trend(acc["orig"], acc["new"], s, n_orig=acc["n_orig"], n_new=acc["n_new"],
                         n_bootstrap=n_bootstrap, seed=seed) for s in scales}  # fmt: skip


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
    strength (:func:`shifted_targets`). With ``match_on`` (e.g. k-vote estimates), MatchedFrequency draws
    on those frequencies instead, while the reported true frequency stays the full-vote one.

    Returns ``(summary, per_model)``. ``summary`` has one row per (strength, seed): ``n_images``,
    ``missing`` (shortfall, images), ``short_bins``, ``mean_frequency`` (true mean frequency of the
    resample), ``mean_gap``/``median_gap``/``min_gap``/``max_gap`` (points), ``slope_linear`` (with
    bootstrap ``slope_linear_ci_low/high``), ``intercept_linear``, ``slope_probit`` (+ CI),
    ``intercept_probit``. ``per_model`` is :func:`resample_accuracies` per (strength, seed).
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


def subsample_votes(counts: np.ndarray, k: int, *, seed: int) -> np.ndarray:
    """Keep ``k`` of each image's votes, drawn without replacement (seeded), as an N x C count matrix.

    Each row is one multivariate hypergeometric draw (``numpy.random.default_rng(seed)``, rows in order).
    An image with fewer than ``k`` votes is an error.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.sum(axis=1)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if (n < k).any():
        raise DataError(f"{int((n < k).sum())} images have fewer than k = {k} votes (first: row "
                        f"{int(np.flatnonzero(n < k)[0])})")  # fmt: skip
    rng = np.random.default_rng(seed)
    return np.stack([rng.multivariate_hypergeometric(row, k) for row in counts]).astype(np.int64)


def estimation_bias(
    counts: np.ndarray,
    labels: np.ndarray,
    ks: Sequence[int] = (3, 5, 10),
    *,
    seed: int = 0,
    edges: Sequence[float] = HISTOGRAM_BINS,
) -> pd.DataFrame:
    """How k-vote frequency estimates relate to the full-vote frequency, per *estimated* bin.

    For each k: subsample k votes per image (:func:`subsample_votes`, seed ``seed + k``), bin the images
    by their k-vote estimate, and report per bin ``n``, ``mean_estimated``, ``mean_true`` (full-vote
    frequency) and ``bias`` = mean_true - mean_estimated; the row ``bin = -1`` (label "all") gives the
    whole set, where the estimate is unbiased, with ``mean_abs_error`` and ``share_rebinned`` (images
    whose estimated bin differs from their full-vote bin).
    """
    labels = np.asarray(labels).astype(np.int64)
    true = frequencies_from_votes(counts, labels)["selection_frequency"].to_numpy()
    true_bins = histogram_bins(true, edges)
    names = _bin_labels(edges)
    rows = []
    for k in ks:
        est = frequencies_from_votes(subsample_votes(counts, int(k), seed=seed + int(k)), labels)
        e = est["selection_frequency"].to_numpy()
        b = histogram_bins(e, edges)
        rows.append((int(k), -1, "all", len(e), float(e.mean()), float(true.mean()), float(true.mean() - e.mean()),
                     float(np.abs(true - e).mean()), float((b != true_bins).mean())))  # fmt: skip
        for j in range(len(edges) + 1):
            m = b == j
            if not m.any():
                rows.append((int(k), j, names[j], 0, np.nan, np.nan, np.nan, np.nan, np.nan))
                continue
            rows.append((int(k), j, names[j], int(m.sum()), float(e[m].mean()), float(true[m].mean()),
                         float(true[m].mean() - e[m].mean()), float(np.abs(true[m] - e[m]).mean()),
                         float((true_bins[m] != j).mean())))  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=[
            "k",
            "bin",
            "bin_label",
            "n",
            "mean_estimated",
            "mean_true",
            "bias",
            "mean_abs_error",
            "share_rebinned",
        ],
    )


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
