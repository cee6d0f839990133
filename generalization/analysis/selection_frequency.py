"""Selection frequency and accuracy on real human annotations (CIFAR-10H votes + released predictions).

The paper explains the accuracy gap by a shift in *selection frequency*: the new test sets hold images
that fewer annotators recognise, and every model does worse on those. With per-image class votes for a
test set (CIFAR-10H: about 50 votes for each CIFAR-10 test image) and per-image predictions of many models
(the 30 CIFAR-10.1 release models, in a :class:`~generalization.store.records.PredictionStore`), this module

1. turns votes into per-image selection frequencies of the labelled class, through the sampler's own
   :func:`generalization.sampler.frequencies.selection_frequencies_from_counts`;
2. measures accuracy per frequency bin (the sampler's bins, or quantile bins) with Clopper-Pearson
   intervals (:func:`accuracy_by_frequency`);
3. draws *frequency-shifted resamples* of the test set with MatchedFrequency
   (:func:`generalization.sampler.strategies.matched_frequency`, unchanged) toward a per-class target histogram
   (from another set, a file, or a named shift, :func:`shifted_targets`), and scores the models on each
   resample from their stored predictions, no model is run (:func:`resample_accuracies`,
   :func:`shift_sweep`);
4. measures the *estimation bias* of frequencies estimated from k of the votes (:func:`subsample_votes`,
   :func:`estimation_bias`, :func:`matching_bias`): matching on noisy estimates draws images whose true
   frequency differs from the one the target asks for (Engstrom et al. 2020).

:func:`write_report` writes the tables, figures and ``REPORT.md`` of ``results/selection-frequency``.
Everything derived from CIFAR-10H is under CC BY-NC-SA 4.0 (:data:`CIFAR10H_LICENCE_NOTE`).

All randomness is seeded (``random.Random`` inside MatchedFrequency, ``numpy.random.default_rng`` for the
vote subsampling), and nothing iterates a set, so results do not depend on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..files import DataError, load_npy
from ..metrics import clopper_pearson
from ..sampler.frequencies import selection_frequencies_from_counts
from ..sampler.strategies import (
    HISTOGRAM_BINS,
    histogram_bins,
)

__all__ = [
    "CIFAR10H_LICENCE_NOTE",
    "FINE_EDGES",
    "load_votes",
    "frequencies_from_votes",
    "frequency_bins",
    "accuracy_by_frequency",
    "store_predictions",
    "accuracy_by_frequency_from_store",
]

CIFAR10H_LICENCE_NOTE = (
    "Derived from CIFAR-10H (Peterson et al., ICCV 2019), licensed CC BY-NC-SA 4.0; "
    "this output is shared under the same licence."
)
#: finer edges for the shift sweep: CIFAR-10H frequencies sit mostly in [0.8, 1], where the sampler's
#: five bins have one bin; a frequency of exactly 1.0 falls in the last bin (values on an edge go up)
FINE_EDGES = (0.6, 0.8, 0.9, 0.95, 1.0)


# ------------------------------------------------------------------------------------------- votes


def load_votes(path: str | os.PathLike, *, num_images: int | None = None) -> np.ndarray:
    """Read an N x C vote-count ``.npy`` (CIFAR-10H's ``cifar10h-counts.npy``) and check it.

    Raises :class:`DataError` naming the file when it is not a 2-D array of non-negative whole counts or
    does not have ``num_images`` rows.
    """
    counts = load_npy(path)
    if counts.ndim != 2:
        raise DataError(
            f"{path}: expected an images x classes array of vote counts, got shape {counts.shape}"
        )
    if not np.issubdtype(counts.dtype, np.integer):
        if not (np.issubdtype(counts.dtype, np.floating) and np.isfinite(counts).all()
                and (counts == np.round(counts)).all()):  # fmt: skip
            raise DataError(f"{path}: vote counts must be whole numbers, got dtype {counts.dtype}")
        counts = counts.astype(np.int64)
    if (counts < 0).any():
        raise DataError(f"{path}: negative vote counts")
    if num_images is not None and counts.shape[0] != num_images:
        raise DataError(f"{path}: {counts.shape[0]} rows of votes, the test set has {num_images} images")
    return counts.astype(np.int64)


def frequencies_from_votes(counts: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Per-image selection frequency of the labelled class from vote counts (the sampler's code).

    Returns ``image_id`` (row index), ``class`` (label), ``num_annotations``, ``num_selected`` and
    ``selection_frequency`` = votes for the label / all votes of the image (NaN without votes).
    """
    labels = np.asarray(labels)
    if len(labels) != len(counts):
        raise DataError(f"{len(counts)} rows of votes but {len(labels)} labels")
    return selection_frequencies_from_counts(counts, labels.astype(np.int64))


# -------------------------------------------------------------------------------- accuracy by bin


def _bin_labels(edges: Sequence[float]) -> list[str]:
    e = list(edges)
    labels = [f"<{e[0]:g}"] + [f"{e[i]:g}–{e[i + 1]:g}" for i in range(len(e) - 1)]
    last = f"≥{e[-1]:g}" if e[-1] < 1 else "=1"
    return labels + [last]


def frequency_bins(
    frequencies, binning: str = "sampler", *, edges: Sequence[float] | None = None, n_quantiles: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every frequency, and the edges used.

    ``binning="sampler"``: the sampler's edges (:data:`generalization.sampler.strategies.HISTOGRAM_BINS`, or
    ``edges``); ``"quantile"``: edges at the ``n_quantiles``-quantiles of the frequencies, duplicates
    dropped (CIFAR-10H has many ties at 1.0, so there are fewer, unequal bins; exactly 1.0 is its own bin).
    A value on an edge goes to the upper bin, as in the sampler. NaN is an error.
    """
    f = np.asarray(frequencies, dtype=np.float64)
    if binning == "sampler":
        e = np.asarray(HISTOGRAM_BINS if edges is None else edges, dtype=np.float64)
    elif binning == "quantile":
        if np.isnan(f).any():
            raise DataError("selection frequencies contain NaN (images without annotations)")
        q = np.quantile(f, np.linspace(0, 1, int(n_quantiles) + 1)[1:-1])
        e = np.unique(q[(q > f.min())])  # an edge at the minimum would leave bin 0 empty
    else:
        raise ValueError(f"unknown binning {binning!r} (use 'sampler' or 'quantile')")
    return histogram_bins(f, e), e


def accuracy_by_frequency(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    frequencies,
    *,
    binning: str = "sampler",
    edges: Sequence[float] | None = None,
    n_quantiles: int = 10,
    level: float = 0.95,
    source: str = "",
) -> pd.DataFrame:
    """Top-1 accuracy of every model per selection-frequency bin, with Clopper-Pearson intervals.

    Parameters
    ----------
    predictions
        ``{model: predictions}``, each N (or N x k, best first; column 0 is used) in the test set's order.
    labels, frequencies
        The N labels and selection frequencies (same order). Images with a NaN frequency (no votes) are
        left out.
    binning, edges, n_quantiles
        See :func:`frequency_bins`.

    Returns
    -------
    One row per (model, bin), models sorted: ``source``, ``model``, ``binning``, ``bin``, ``bin_label``,
    ``freq_low``, ``freq_high`` (the bin's edges), ``mean_frequency``, ``n``, ``correct``, ``accuracy``,
    ``ci_low``, ``ci_high`` (percent).
    """
    labels = np.asarray(labels).astype(np.int64)
    f = np.asarray(frequencies, dtype=np.float64)
    if f.shape != labels.shape:
        raise DataError(f"{len(f)} frequencies for {len(labels)} labels")
    keep = ~np.isnan(f)
    bins, e = frequency_bins(f[keep], binning, edges=edges, n_quantiles=n_quantiles)
    nb = len(e) + 1
    names = _bin_labels(e) if binning == "sampler" else [f"q{b}" for b in range(nb)]
    lows = np.r_[0.0, e]
    highs = np.r_[e, 1.0]
    n = np.bincount(bins, minlength=nb)
    mean_f = np.bincount(bins, weights=f[keep], minlength=nb) / np.maximum(n, 1)
    rows = []
    for model in sorted(predictions):
        p = np.asarray(predictions[model])
        p = p[:, 0] if p.ndim == 2 else p
        if p.shape[0] != len(labels):
            raise DataError(f"model {model!r}: {p.shape[0]} predictions for {len(labels)} images")
        correct = np.bincount(bins, weights=(p[keep] == labels[keep]).astype(np.float64), minlength=nb)
        lo, hi = clopper_pearson(correct, n, level)
        for b in range(nb):
            rows.append((source, model, binning, b, names[b], lows[b], highs[b], mean_f[b], int(n[b]),
                         int(correct[b]), 100.0 * correct[b] / n[b] if n[b] else np.nan, 100.0 * lo[b],
                         100.0 * hi[b]))  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=[
            "source",
            "model",
            "binning",
            "bin",
            "bin_label",
            "freq_low",
            "freq_high",
            "mean_frequency",
            "n",
            "correct",
            "accuracy",
            "ci_low",
            "ci_high",
        ],
    )


def store_predictions(store, test_set: str, *, sources: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Top-1 predictions of every record with per-image predictions on ``test_set``.

    Keys are model names, or ``source/model`` when several sources are stored. Accuracy-only records
    (published tables) are skipped.
    """
    from ..store.records import PredictionStore

    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    recs = [r for r in store.records() if r.test_set == test_set and (sources is None or r.source in sources)]
    many = len({r.source for r in recs}) > 1
    out = {}
    for r in recs:
        p = store.predictions(r.source, r.model, r.test_set)
        if p is None:
            continue
        out[f"{r.source}/{r.model}" if many else r.model] = (
            np.asarray(p)[:, 0] if p.ndim == 2 else np.asarray(p)
        )
    return dict(sorted(out.items()))


def accuracy_by_frequency_from_store(
    store, test_set: str, frequencies, *, sources: Sequence[str] | None = None, **kwargs: Any
) -> pd.DataFrame:
    """:func:`accuracy_by_frequency` for every model in a store with per-image predictions on ``test_set``
    (labels from the store)."""
    from ..store.records import PredictionStore

    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    labels = store.labels(test_set)
    if labels is None:
        raise DataError(f"{store.root}: the store has no labels for {test_set!r}")
    preds = store_predictions(store, test_set, sources=sources)
    if not preds:
        raise DataError(f"{store.root}: no per-image predictions on {test_set!r}")
    return accuracy_by_frequency(preds, labels, frequencies, **kwargs)


# --------------------------------------------------------------------------------- shifted targets


# ---------------------------------------------------------------------------------- resample scores


# ----------------------------------------------------------------------------------- estimation bias


# ------------------------------------------------------------------------------------------- figures


# -------------------------------------------------------------------------------------------- report


