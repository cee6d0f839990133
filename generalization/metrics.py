"""Accuracy counts, exact (Clopper-Pearson) intervals and the gap between two test sets."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "topk_correct",
    "clopper_pearson",
    "gap_interval",
    "accuracy_table_from_counts",
    "check_counts",
    "ACCURACY_COLUMNS",
]

ACCURACY_COLUMNS = [
    "source", "model", "test_set", "n",
    "top1_correct", "top1", "top1_ci_low", "top1_ci_high",
    "top5_correct", "top5", "top5_ci_low", "top5_ci_high",
]  # fmt: skip


def topk_correct(predictions: np.ndarray, labels: np.ndarray, k: int) -> int:
    """Number of rows whose first ``k`` predictions contain the label (predictions: N x >=k, best first)."""
    predictions = np.asarray(predictions)
    if predictions.ndim == 1:
        predictions = predictions[:, None]
    if predictions.shape[1] < k:
        raise ValueError(f"top-{k} needs at least {k} predictions per image, got {predictions.shape[1]}")
    return int((predictions[:, :k] == np.asarray(labels)[:, None]).any(axis=1).sum())


def clopper_pearson(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial interval for k successes in n trials, as fractions.

    Uses the beta quantiles (the Clopper-Pearson construction); the lower bound is 0 at k = 0 and the upper
    bound is 1 at k = n. Works elementwise on arrays.
    """
    from scipy import stats  # here, not at import: scipy.stats costs seconds of start-up (import commands)

    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lo, hi


def gap_interval(k_orig, n_orig, k_new, n_new, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The accuracy gap (original - new) and its interval, as fractions.

    The interval is Newcombe's hybrid score interval for the difference of two independent proportions
    (statsmodels ``confint_proportions_2indep(method="newcomb")``); it stays inside [-1, 1] and is sensible at
    0 % and 100 %.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep

    k1, n1, k2, n2 = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (k_orig, n_orig, k_new, n_new))
    k1, n1, k2, n2 = np.broadcast_arrays(k1, n1, k2, n2)
    gap = k1 / n1 - k2 / n2
    lo = np.empty_like(gap)
    hi = np.empty_like(gap)
    for i in range(gap.size):
        lo.flat[i], hi.flat[i] = confint_proportions_2indep(
            k1.flat[i], n1.flat[i], k2.flat[i], n2.flat[i], method="newcomb", compare="diff", alpha=1 - level
        )
    return gap, lo, hi


def accuracy_table_from_counts(df: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Add percentages and Clopper-Pearson intervals (percent) to a table of counts.

    ``df`` needs ``source, model, test_set, n, top1_correct`` and optionally ``top5_correct`` (missing or
    NaN where unknown). Other columns are kept after the standard ones.
    """
    if df.empty:
        return pd.DataFrame(columns=ACCURACY_COLUMNS)
    out = df.copy()
    if "top5_correct" not in out:
        out["top5_correct"] = np.nan
    out["n"] = out["n"].astype("int64")
    out["top1_correct"] = out["top1_correct"].astype("int64")
    out["top5_correct"] = pd.to_numeric(out["top5_correct"]).astype("Int64")
    for col in ("top1", "top5"):
        k = out[f"{col}_correct"].astype("float64").to_numpy()
        n = out["n"].to_numpy(dtype=float)
        lo, hi = clopper_pearson(np.nan_to_num(k), n, level)
        known = ~np.isnan(k)
        out[col] = np.where(known, 100.0 * k / n, np.nan)
        out[f"{col}_ci_low"] = np.where(known, 100.0 * lo, np.nan)
        out[f"{col}_ci_high"] = np.where(known, 100.0 * hi, np.nan)
    rest = [c for c in out.columns if c not in ACCURACY_COLUMNS]
    return out[ACCURACY_COLUMNS + rest].sort_values(["test_set", "source", "model"], kind="stable").reset_index(drop=True)


def check_counts(df: pd.DataFrame, where: str) -> None:
    """Refuse a counts table whose counts are not whole numbers with 0 < n and 0 <= top-1 <= top-5 <= n
    (top-5 may be empty), or whose names are empty. ``where`` names the file; rows are named by their CSV
    line (header = line 1)."""
    from .files import DataError

    def line(mask: pd.Series) -> int:
        return int(np.flatnonzero(mask.to_numpy())[0]) + 2

    for col in ("source", "model", "test_set"):
        empty = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if empty.any():
            raise DataError(f"{where}: line {line(empty)}: empty {col}")
    nums = {}
    for col in ("n", "top1_correct", "top5_correct"):
        if col not in df.columns:
            continue
        v = pd.to_numeric(df[col], errors="coerce")
        bad = (v.isna() & df[col].notna()) | (v.notna() & (v != v.round()))
        if col != "top5_correct":
            bad |= v.isna()
        if bad.any():
            raise DataError(f"{where}: line {line(bad)}: {col} must be a whole number, got {df[col][bad].iloc[0]!r}")
        nums[col] = v
    n, top1 = nums["n"], nums["top1_correct"]
    top5 = nums.get("top5_correct", pd.Series(np.nan, index=df.index))
    for mask, what in (
        (n <= 0, "n must be positive"),
        ((top1 < 0) | (top1 > n), "top1_correct must be in 0..n"),
        (top5.notna() & ((top5 < top1) | (top5 > n)), "top5_correct must be in top1_correct..n"),
    ):
        if mask.any():
            raise DataError(f"{where}: line {line(mask)}: {what}")
