"""Selection frequency, the facts the sampler and the analysis share.

The *selection frequency* of an image for a class is the share of annotators who chose that class for it.
:func:`selection_frequencies_from_counts` turns per-image class vote counts (e.g. CIFAR-10H) into those
frequencies; :data:`HISTOGRAM_BINS` and :func:`histogram_bins` are the frequency bins MatchedFrequency samples
in (the paper's five 0.2-wide bins) and the analysis measures accuracy in. The sampler
(:mod:`generalization.sampler.strategies`, :mod:`generalization.sampler.frequencies`) re-exports these names,
so both subsystems use this one copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .files import DataError

__all__ = ["HISTOGRAM_BINS", "histogram_bins", "selection_frequencies_from_counts"]

#: the sampler's selection-frequency bin edges: bins [0, 0.2), [0.2, 0.4), ..., [0.8, 1]
HISTOGRAM_BINS = (0.2, 0.4, 0.6, 0.8)


def histogram_bins(
    freqs: Sequence[float] | np.ndarray, edges: Sequence[float] = HISTOGRAM_BINS
) -> np.ndarray:
    """Bin index of each selection frequency: bins split at ``edges``; a value on an edge goes to the upper
    bin (0.2 is in bin 1 of 0…4 with the default edges). NaN is an error."""
    f = np.asarray(freqs, dtype=np.float64)
    if np.isnan(f).any():
        raise DataError("selection frequencies contain NaN (images without annotations)")
    return np.searchsorted(np.asarray(edges, dtype=np.float64), f, side="right").astype(np.int64)


def selection_frequencies_from_counts(
    counts: np.ndarray, labels: Sequence[int] | np.ndarray, *, image_ids: Sequence | None = None
) -> pd.DataFrame:
    """Selection frequencies from per-image class vote counts (e.g. CIFAR-10H's N x C count matrix).

    Parameters
    ----------
    counts
        Integer array of shape (N, C): ``counts[i, c]`` annotators chose class ``c`` for image ``i``.
    labels
        The N labels whose selection frequency is wanted (e.g. the official test labels).
    image_ids
        Optional ids for the rows (default ``0 … N-1``).

    Returns
    -------
    DataFrame with ``image_id``, ``class`` (the label), ``num_annotations`` (row sum), ``num_selected``
    (votes for the label) and ``selection_frequency`` (their ratio; NaN for a row without votes).
    """
    counts = np.asarray(counts)
    labels = np.asarray(labels)
    if counts.ndim != 2:
        raise DataError(f"counts must be a 2-D (images x classes) array, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        if (
            np.issubdtype(counts.dtype, np.floating)
            and np.all(np.isfinite(counts))
            and np.all(counts == np.round(counts))
        ):
            counts = counts.astype(np.int64)
        else:
            raise DataError(f"counts must hold whole vote counts, got dtype {counts.dtype}")
    if (counts < 0).any():
        raise DataError("counts must be non-negative")
    if labels.shape != (counts.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"labels must be {counts.shape[0]} integers, got shape {labels.shape} dtype {labels.dtype}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= counts.shape[1]):
        raise DataError(f"labels must lie in 0…{counts.shape[1] - 1}")
    n = counts.sum(axis=1).astype(np.int64)
    k = counts[np.arange(len(labels)), labels].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        freq = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    ids = np.arange(len(labels)) if image_ids is None else np.asarray(image_ids)
    if len(ids) != len(labels):
        raise DataError(f"image_ids has {len(ids)} entries for {len(labels)} rows")
    return pd.DataFrame(
        {
            "image_id": ids,
            "class": labels.astype(np.int64),
            "num_annotations": n,
            "num_selected": k,
            "selection_frequency": freq,
        }
    )
