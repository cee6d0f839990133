"""The paper's analysis as plain functions over the accuracy table (a pandas DataFrame).

The accuracy table has one row per (source, model, test set) with counts and percentages (see
:func:`generalization.metrics.accuracy_table_from_counts`); it comes from a store
(``PredictionStore.accuracy_table()``) or from an ``accuracies.csv`` (:func:`read_accuracies`).

Trend fits are ordinary least squares of new accuracy on original accuracy on one of three scales:

``linear``  percent on both axes (slope in points per point, intercept in points);
``probit``  the standard normal quantile of the accuracy fraction, ``Phi^-1(acc)``;
``logit``   ``log(acc / (1 - acc))``.

Accuracies of exactly 0 or 100 % are moved half a count inwards before a probit/logit transform.
The band is a percentile bootstrap over models (resampling models with replacement, seeded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import test_sets
from ..files import DataError
from ..metrics import ACCURACY_COLUMNS, accuracy_table_from_counts, gap_interval

__all__ = [
    "SCALES",
    "REFERENCE_SOURCES",
    "read_accuracies",
    "combine_accuracy_tables",
    "to_scale",
    "from_scale",
    "paired_accuracies",
    "TrendFit",
    "fit_trend",
    "fit_trends",
    "rank_agreement",
    "test_set_pairs",
]

SCALES = ("linear", "probit", "logit")

#: the sources whose models define the trend by default (the paper's models), per original test set
REFERENCE_SOURCES = {"imagenet-val": "imagenetv2-release", "cifar10-test": "cifar10.1-release"}


def read_accuracies(path: str | os.PathLike) -> pd.DataFrame:
    """Read an ``accuracies.csv`` (as written by ``reproduce``/``analyze``) and recompute its intervals."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    df = pd.read_csv(path, keep_default_na=True)
    need = ["source", "model", "test_set", "n", "top1_correct"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    if df[need].isna().any().any():
        bad = int(df[need].isna().any(axis=1).idxmax()) + 2
        raise DataError(f"{path}: line {bad}: empty value in a required column")
    keep = [c for c in df.columns if c not in ACCURACY_COLUMNS or c in need + ["top5_correct"]]
    df = df[keep].copy()
    df["source"] = df["source"].astype(str)
    df["model"] = df["model"].astype(str)
    df["test_set"] = df["test_set"].astype(str)
    if "flag" in df.columns:
        df["flag"] = ["" if pd.isna(v) else str(v) for v in df["flag"]]  # an all-empty column reads as float
    return accuracy_table_from_counts(df)


def combine_accuracy_tables(tables: list[pd.DataFrame], names: list[str] | None = None) -> pd.DataFrame:
    """Stack accuracy tables (e.g. from several stores); a (source, model, test set) may appear only once."""
    tables = [t for t in tables if not t.empty]
    if not tables:
        raise DataError("no accuracy rows to analyze (are the stores empty?)")
    df = pd.concat(tables, ignore_index=True)
    if "flag" in df:
        df["flag"] = ["" if pd.isna(v) else str(v) for v in df["flag"]]
    dup = df.duplicated(["source", "model", "test_set"], keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        where = f" ({', '.join(names)})" if names else ""
        raise DataError(f"({r['source']}, {r['model']}, {r['test_set']}) appears in more than one input{where}")
    return df.sort_values(["test_set", "source", "model"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------- scales


def to_scale(pct, scale: str, n=None) -> np.ndarray:
    """Percent accuracy -> the fit's coordinate on ``scale``."""
    pct = np.asarray(pct, dtype=float)
    if scale == "linear":
        return pct
    p = pct / 100.0
    if n is not None:
        eps = 0.5 / np.asarray(n, dtype=float)
        p = np.clip(p, eps, 1 - eps)
    else:
        p = np.clip(p, 1e-9, 1 - 1e-9)
    if scale == "probit":
        return stats.norm.ppf(p)
    if scale == "logit":
        return np.log(p / (1 - p))
    raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")


def from_scale(z, scale: str) -> np.ndarray:
    """The fit's coordinate on ``scale`` -> percent accuracy."""
    z = np.asarray(z, dtype=float)
    if scale == "linear":
        return z
    if scale == "probit":
        return 100.0 * stats.norm.cdf(z)
    if scale == "logit":
        return 100.0 / (1.0 + np.exp(-z))
    raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")


# -------------------------------------------------------------------------------------------- pairing


def test_set_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(original, new) pairs present in the table: the built-in pairs in the registry's order, then the
    declared ones (sampler manifests, :func:`generalization.test_sets.declare`)."""
    return test_sets.pairs(table["test_set"])


def paired_accuracies(table: pd.DataFrame, original: str, new: str, level: float = 0.95) -> pd.DataFrame:
    """One row per (source, model) with its original and new top-1 and the gap.

    Models with only an original accuracy are kept (new columns NaN): analysis can place them on the trend.
    Columns: ``source, model, n_orig, correct_orig, orig, orig_ci_low, orig_ci_high, n_new, correct_new, new,
    new_ci_low, new_ci_high, gap, gap_ci_low, gap_ci_high, flag`` (accuracies and gap in percent).
    """
    cols = ["source", "model", "n", "top1_correct", "top1", "top1_ci_low", "top1_ci_high"]
    a = table.loc[table["test_set"] == original, cols + (["flag"] if "flag" in table else [])]
    b = table.loc[table["test_set"] == new, cols + (["flag"] if "flag" in table else [])]
    ren = {"n": "n_{}", "top1_correct": "correct_{}", "top1": "{}", "top1_ci_low": "{}_ci_low", "top1_ci_high": "{}_ci_high", "flag": "flag_{}"}
    a = a.rename(columns={k: v.format("orig") for k, v in ren.items()})
    b = b.rename(columns={k: v.format("new") for k, v in ren.items()})
    df = a.merge(b, on=["source", "model"], how="left")
    flags = [df[c].fillna("") for c in ("flag_orig", "flag_new") if c in df]
    df["flag"] = (flags[0] + " " + flags[1]).str.strip() if len(flags) == 2 else ""
    df = df.drop(columns=[c for c in ("flag_orig", "flag_new") if c in df])
    has_new = df["n_new"].notna()
    df["gap"] = np.nan
    df["gap_ci_low"] = np.nan
    df["gap_ci_high"] = np.nan
    if has_new.any():
        gap, lo, hi = gap_interval(
            df.loc[has_new, "correct_orig"], df.loc[has_new, "n_orig"],
            df.loc[has_new, "correct_new"], df.loc[has_new, "n_new"], level,
        )  # fmt: skip
        df.loc[has_new, "gap"] = 100 * gap
        df.loc[has_new, "gap_ci_low"] = 100 * lo
        df.loc[has_new, "gap_ci_high"] = 100 * hi
    for c in ("n_new", "correct_new"):
        df[c] = df[c].astype("Int64")
    df.insert(0, "new_test_set", new)
    df.insert(0, "original_test_set", original)
    return df.sort_values(["source", "model"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- fits


@dataclass
class TrendFit:
    """A least-squares trend of new on original accuracy, with a bootstrap band.

    ``band_x`` is a grid of original accuracies (percent); ``band_low``/``band_high`` the band of the fitted
    new accuracy (percent) there. ``slope``/``intercept`` are on the fit's scale.
    """

    scale: str
    n_models: int
    slope: float
    intercept: float
    r: float
    p_value: float
    stderr: float
    band_level: float
    n_bootstrap: int
    seed: int
    slope_ci_low: float = np.nan
    slope_ci_high: float = np.nan
    band_x: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    band_low: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    band_high: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    boot_slopes: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    boot_intercepts: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    def predict(self, orig_pct) -> np.ndarray:
        """Predicted new accuracy (percent) for original accuracies (percent)."""
        return from_scale(self.intercept + self.slope * to_scale(orig_pct, self.scale), self.scale)

    def band_at(self, orig_pct) -> tuple[np.ndarray, np.ndarray]:
        """The bootstrap band (percent) of the predicted new accuracy at original accuracies (percent)."""
        z = np.atleast_1d(to_scale(orig_pct, self.scale))
        if self.boot_slopes.size == 0:
            p = self.predict(orig_pct)
            return p, p
        lines = self.boot_intercepts[:, None] + self.boot_slopes[:, None] * z[None, :]
        lo, hi = np.percentile(lines, [100 * (1 - self.band_level) / 2, 100 * (1 + self.band_level) / 2], axis=0)
        return from_scale(lo, self.scale), from_scale(hi, self.scale)


def fit_trend(
    orig_pct,
    new_pct,
    scale: str = "linear",
    *,
    n_orig=None,
    n_new=None,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    grid=None,
) -> TrendFit:
    """Least-squares fit of new on original accuracy (percent) on ``scale``, with a bootstrap band.

    The point estimate is :func:`scipy.stats.linregress` on the transformed points. The band: resample the
    models with replacement ``n_bootstrap`` times (``numpy.random.default_rng(seed)``), refit, and take the
    ``(1 - level)/2`` and ``(1 + level)/2`` percentiles of the fitted line at each grid point.
    """
    x = to_scale(orig_pct, scale, n_orig)
    y = to_scale(new_pct, scale, n_new)
    m = len(x)
    if m < 3:
        raise ValueError(f"a trend needs at least 3 models, got {m}")
    res = stats.linregress(x, y)
    if grid is None:
        lo_pct, hi_pct = float(np.min(orig_pct)), float(np.max(orig_pct))
        pad = 0.05 * (hi_pct - lo_pct)
        grid = np.linspace(max(lo_pct - pad, 0.05), min(hi_pct + pad, 99.95), 200)
    grid = np.asarray(grid, dtype=float)
    fit = TrendFit(scale, m, float(res.slope), float(res.intercept), float(res.rvalue), float(res.pvalue),
                   float(res.stderr), level, n_bootstrap, seed, band_x=grid)  # fmt: skip
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, m, size=(n_bootstrap, m))
        bx, by = x[idx], y[idx]
        mx, my = bx.mean(axis=1, keepdims=True), by.mean(axis=1, keepdims=True)
        sxx = ((bx - mx) ** 2).sum(axis=1)
        ok = sxx > 0  # a resample of one distinct model has no slope
        slope = ((bx - mx) * (by - my)).sum(axis=1)[ok] / sxx[ok]
        icpt = my[ok, 0] - slope * mx[ok, 0]
        fit.boot_slopes, fit.boot_intercepts = slope, icpt
        fit.band_low, fit.band_high = fit.band_at(grid)
        q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
        fit.slope_ci_low, fit.slope_ci_high = (float(v) for v in np.percentile(slope, q))
    else:
        fit.band_low = fit.band_high = fit.predict(grid)
    return fit


def _fit_points(pairs: pd.DataFrame, original: str, fit_sources: list[str] | None) -> pd.DataFrame:
    pts = pairs[pairs["new"].notna() & (pairs["flag"] == "")]
    if fit_sources is None:
        ref = REFERENCE_SOURCES.get(original)
        fit_sources = [ref] if ref in set(pts["source"]) else sorted(set(pts["source"]))
    return pts[pts["source"].isin(fit_sources)]


def fit_trends(
    table: pd.DataFrame,
    *,
    scales: tuple[str, ...] = SCALES,
    fit_sources: list[str] | None = None,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], TrendFit]]:
    """Fit every (original, new) pair in the table on every scale.

    The trend is fitted on ``fit_sources`` (default: the paper's release models where present, otherwise
    every source); flagged rows are left out. Returns the fits table (one row per original, new, scale) and
    the :class:`TrendFit` objects keyed by (original, new, scale).
    """
    rows, fits = [], {}
    for original, new in test_set_pairs(table):
        pairs = paired_accuracies(table, original, new, level)
        pts = _fit_points(pairs, original, fit_sources)
        if len(pts) < 3:
            continue
        for scale in scales:
            fit = fit_trend(pts["orig"], pts["new"], scale, n_orig=pts["n_orig"], n_new=pts["n_new"].astype(float),
                            n_bootstrap=n_bootstrap, level=level, seed=seed)  # fmt: skip
            fits[(original, new, scale)] = fit
            rows.append({
                "original": original, "new": new, "scale": scale, "n_models": fit.n_models,
                "fit_sources": ";".join(sorted(set(pts["source"]))),
                "slope": fit.slope, "intercept": fit.intercept, "r": fit.r, "p_value": fit.p_value,
                "stderr": fit.stderr, "slope_ci_low": fit.slope_ci_low, "slope_ci_high": fit.slope_ci_high,
                "band_level": level, "n_bootstrap": n_bootstrap, "seed": seed,
            })  # fmt: skip
    return pd.DataFrame(rows), fits


def residuals(table: pd.DataFrame, fits: dict[tuple[str, str, str], TrendFit], scale: str = "linear") -> pd.DataFrame:
    """Every (source, model) of every pair, with its position relative to the trend on ``scale``.

    ``predicted_new`` is the trend's new accuracy at the model's original accuracy, with the band;
    ``effective_robustness`` = new - predicted_new (percentage points; positive = above the trend), NaN for
    models with no new accuracy (they are *predicted*).
    """
    out = []
    for original, new in test_set_pairs(table):
        fit = fits.get((original, new, scale))
        pairs = paired_accuracies(table, original, new)
        if fit is None:
            continue
        pairs["predicted_new"] = fit.predict(pairs["orig"])
        lo, hi = fit.band_at(pairs["orig"])
        pairs["predicted_new_low"], pairs["predicted_new_high"] = lo, hi
        pairs["effective_robustness"] = pairs["new"] - pairs["predicted_new"]
        pairs["scale"] = scale
        out.append(pairs)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def rank_agreement(table: pd.DataFrame, *, by_source: bool = True) -> pd.DataFrame:
    """Spearman's rho and Kendall's tau between original and new top-1, per (original, new[, source]).

    Flagged rows are left out.
    """
    rows = []
    for original, new in test_set_pairs(table):
        pairs = paired_accuracies(table, original, new)
        pairs = pairs[pairs["new"].notna() & (pairs["flag"] == "")]
        groups = pairs.groupby("source", sort=True) if by_source else [("all", pairs)]
        for source, g in groups:
            if len(g) < 3:
                continue
            rho = stats.spearmanr(g["orig"], g["new"])
            tau = stats.kendalltau(g["orig"], g["new"])
            rows.append({"original": original, "new": new, "source": source, "n_models": len(g),
                         "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue),
                         "kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue)})  # fmt: skip
    return pd.DataFrame(rows)
