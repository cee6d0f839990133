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

Every fit is over a named **model set** (:data:`MODEL_SETS`; default ``paper``: the models the paper fits —
ImageNet: the ImageNetV2 release's CNNs, i.e. without its three Fisher-vector models; CIFAR-10: the
CIFAR-10.1 release's models). Flagged rows are never fitted.

Per model (:func:`residuals`):

``predicted_new``, ``predicted_new_low/high``
    the 95 % *prediction interval* of the baseline trend (the ``paper`` set, probit scale by default):
    residual scatter of the fitted models (less their binomial noise) + the new test set's binomial noise at
    the predicted accuracy + the fit's own uncertainty, Student-t with m - 2 degrees of freedom.
``effective_robustness``
    as Taori et al. 2020 define it: new accuracy minus the accuracy predicted by a trend fitted on the
    logit-scaled accuracies of *standard* models (:func:`standard_models`), back in percent; NaN outside
    the baseline's range of original accuracies widened by :data:`ER_MARGIN` points.
``linear_residual``
    new minus the linear (percent) trend of the model set: the paper's figures' vertical distance.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import test_sets
from ..files import DataError
from ..metrics import ACCURACY_COLUMNS, accuracy_table_from_counts, check_counts, gap_interval
from ..sources import baseline_sources, non_standard_models
from ..test_sets import get_info

__all__ = [
    "SCALES",
    "REFERENCE_SOURCES",
    "MODEL_SETS",
    "FISHER_VECTOR_MODELS",
    "ER_MARGIN",
    "ModelSet",
    "get_model_set",
    "binomial_variance",
    "bootstrap_weights",
    "standard_models",
    "residuals",
    "read_accuracies",
    "combine_accuracy_tables",
    "to_scale",
    "from_scale",
    "paired_accuracies",
    "reuse_pairs",
    "TrendFit",
    "fit_trend",
    "fit_trends",
    "rank_agreement",
    "test_set_pairs",
]

SCALES = ("linear", "probit", "logit")

#: the sources whose models define the trend by default (the paper's models), per original test set: the
#: fitting baselines of :data:`generalization.sources.SOURCES`
REFERENCE_SOURCES = baseline_sources()

#: the ImageNetV2 release's Fisher-vector models (Sánchez & Perronnin 2011). The paper's ImageNet fit is over
#: the release's convolutional networks; these three are drawn but not fitted in the ``paper`` model set.
#: (:attr:`generalization.sources.Source.non_standard`)
FISHER_VECTOR_MODELS = non_standard_models()

#: points (percent of original accuracy) by which effective robustness may extrapolate past the baseline's models
ER_MARGIN = 5.0

#: the values of an accuracy table's optional ``model_type`` column (Taori et al.'s categories)
MODEL_TYPES = ("standard", "more_data", "robustness_intervention", "other")


@dataclass(frozen=True)
class ModelSet:
    """A named set of (source, model) to fit a trend on.

    ``sources``: the sources it draws from (``None`` = every source in the table); ``exclude``: per source,
    models left out; ``models``: an explicit list of model names (matched in any of ``sources``), or
    ``None`` for all. Flagged rows are left out of every set.
    """

    name: str
    description: str
    sources: tuple[str, ...] | None = None
    exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)
    models: tuple[str, ...] | None = None

    def mask(self, pairs: pd.DataFrame, original: str) -> pd.Series:
        """Which rows of a :func:`paired_accuracies` frame belong to the set (before the flag filter)."""
        sources = self.sources
        if sources is None:
            keep = pd.Series(True, index=pairs.index)
        else:
            wanted = [s for s in sources if s in set(pairs["source"])]
            if self.name in ("paper", "release"):  # one release per original test set
                ref = REFERENCE_SOURCES.get(original)
                wanted = [ref] if ref in wanted else []
            keep = pairs["source"].isin(wanted)
        for src, names in self.exclude.items():
            keep &= ~((pairs["source"] == src) & pairs["model"].isin(names))
        if self.models is not None:
            keep &= pairs["model"].isin(self.models)
        return keep


#: the built-in model sets; ``--fit-models`` also takes a comma-separated list or a file of model names
MODEL_SETS: dict[str, ModelSet] = {
    "paper": ModelSet("paper", "the paper's models: ImageNetV2 release CNNs (no Fisher vectors); CIFAR-10.1 release models",
                      tuple(REFERENCE_SOURCES.values()), FISHER_VECTOR_MODELS),
    "release": ModelSet("release", "every model of the release (ImageNetV2 incl. Fisher vectors; CIFAR-10.1)",
                        tuple(REFERENCE_SOURCES.values())),
    "all": ModelSet("all", "every unflagged model of every source"),
}  # fmt: skip


def get_model_set(spec: str | ModelSet | list[str] | None) -> ModelSet:
    """A :class:`ModelSet` from a name in :data:`MODEL_SETS`, a list of model names, a comma-separated list,
    or the path of a text file with one model name per line (``#`` comments allowed)."""
    if spec is None:
        return MODEL_SETS["paper"]
    if isinstance(spec, ModelSet):
        return spec
    if isinstance(spec, (list, tuple)):
        names = tuple(sorted({str(v) for v in spec}))
        return ModelSet("custom(" + ",".join(names) + ")", "a list of models given by the user", models=names)
    spec = str(spec)
    if spec in MODEL_SETS:
        return MODEL_SETS[spec]
    path = Path(spec)
    if path.is_file():
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
        names = tuple(sorted({ln for ln in lines if ln}))
        if not names:
            raise DataError(f"{path}: no model names in the model-set file")
        return ModelSet(f"file:{path.name}", f"the {len(names)} models listed in {path}", models=names)
    names = tuple(sorted({v.strip() for v in spec.split(",") if v.strip()}))
    if len(names) >= 3:
        return ModelSet("custom(" + ",".join(names) + ")", "a list of models given by the user", models=names)
    raise DataError(f"unknown model set {spec!r}: use one of {', '.join(MODEL_SETS)}, a comma-separated list of "
                    "at least 3 model names, or a file of model names")  # fmt: skip


def read_accuracies(path: str | os.PathLike) -> pd.DataFrame:
    """Read an ``accuracies.csv`` (as written by ``reproduce``/``analyze``) and recompute its intervals."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from None
    need = ["source", "model", "test_set", "n", "top1_correct"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    if df[need].isna().any().any():
        bad = int(df[need].isna().any(axis=1).idxmax()) + 2
        raise DataError(f"{path}: line {bad}: empty value in a required column")
    check_counts(df, str(path))
    keep = [c for c in df.columns if c not in ACCURACY_COLUMNS or c in need + ["top5_correct"]]
    df = df[keep].copy()
    df["source"] = df["source"].astype(str)
    df["model"] = df["model"].astype(str)
    df["test_set"] = df["test_set"].astype(str)
    for col in ("flag", "repair", "model_type"):  # an all-empty column reads as float
        if col in df.columns:
            df[col] = ["" if pd.isna(v) else str(v) for v in df[col]]
    if "model_type" in df.columns:
        bad = sorted(set(df["model_type"]) - set(MODEL_TYPES) - {""})
        if bad:
            raise DataError(f"{path}: unknown model_type {bad[0]!r} (expected one of {', '.join(MODEL_TYPES)} or empty)")
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


_PAIRS_MEMO: dict | None = None


@contextlib.contextmanager
def reuse_pairs():
    """Within this block, :func:`paired_accuracies` of the same table object (not modified meanwhile) is
    computed once per (original, new, level) and handed out as copies: the gap intervals are the costly part."""
    global _PAIRS_MEMO
    outer = _PAIRS_MEMO
    _PAIRS_MEMO = {} if outer is None else outer
    try:
        yield
    finally:
        _PAIRS_MEMO = outer


def paired_accuracies(table: pd.DataFrame, original: str, new: str, level: float = 0.95) -> pd.DataFrame:
    """One row per (source, model) with its original and new top-1 and the gap.

    Models with only an original accuracy are kept (new columns NaN): analysis can place them on the trend.
    Columns: ``source, model, n_orig, correct_orig, orig, orig_ci_low, orig_ci_high, n_new, correct_new, new,
    new_ci_low, new_ci_high, gap, gap_ci_low, gap_ci_high, flag`` (accuracies and gap in percent).
    """
    if _PAIRS_MEMO is not None:
        key = (id(table), len(table), original, new, level)
        if key not in _PAIRS_MEMO:
            _PAIRS_MEMO[key] = (table, _paired_accuracies(table, original, new, level))  # holds table: id stays unique
        return _PAIRS_MEMO[key][1].copy()
    return _paired_accuracies(table, original, new, level)


def _paired_accuracies(table: pd.DataFrame, original: str, new: str, level: float) -> pd.DataFrame:
    cols = ["source", "model", "n", "top1_correct", "top1", "top1_ci_low", "top1_ci_high"]
    cols += [c for c in ("flag", "model_type") if c in table]
    a = table.loc[table["test_set"] == original, cols]
    b = table.loc[table["test_set"] == new, cols]
    ren = {"n": "n_{}", "top1_correct": "correct_{}", "top1": "{}", "top1_ci_low": "{}_ci_low", "top1_ci_high": "{}_ci_high",
           "flag": "flag_{}", "model_type": "model_type_{}"}  # fmt: skip
    a = a.rename(columns={k: v.format("orig") for k, v in ren.items()})
    b = b.rename(columns={k: v.format("new") for k, v in ren.items()})
    df = a.merge(b, on=["source", "model"], how="left")
    flags = [df[c].fillna("") for c in ("flag_orig", "flag_new") if c in df]
    df["flag"] = (flags[0] + " " + flags[1]).str.strip() if len(flags) == 2 else ""
    df = df.drop(columns=[c for c in ("flag_orig", "flag_new") if c in df])
    if "model_type_orig" in df:  # a model's type, from either row (the original's wins)
        mt = df["model_type_orig"].where(df["model_type_orig"].notna() & (df["model_type_orig"] != ""), df["model_type_new"])
        df["model_type"] = ["" if pd.isna(v) else str(v) for v in mt]
        df = df.drop(columns=["model_type_orig", "model_type_new"])
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
    """A least-squares trend of new on original accuracy, with a bootstrap band and prediction intervals.

    ``band_x`` is a grid of original accuracies (percent); ``band_low``/``band_high`` the band of the fitted
    new accuracy (percent) there. ``slope``/``intercept`` are on the fit's scale. ``x``/``y`` are the fitted
    points on the fit's scale, ``n_new`` their new test sets' sizes, ``orig_range`` the span of their
    original accuracies (percent).
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
    model_set: str = ""
    slope_ci_low: float = np.nan
    slope_ci_high: float = np.nan
    intercept_ci_low: float = np.nan
    intercept_ci_high: float = np.nan
    band_x: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    band_low: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    band_high: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    boot_slopes: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    boot_intercepts: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    x: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    y: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    n_new: np.ndarray | None = field(default=None, repr=False)
    orig_range: tuple[float, float] = (np.nan, np.nan)
    members: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # the fitted (source, model) pairs

    def predict(self, orig_pct) -> np.ndarray:
        """Predicted new accuracy (percent) for original accuracies (percent)."""
        return from_scale(self.intercept + self.slope * to_scale(orig_pct, self.scale), self.scale)

    def band_at(self, orig_pct, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The bootstrap band (percent) of the predicted new accuracy at original accuracies (percent).

        Inside the fit's grid the band is interpolated (on the fit's scale) from its values at the grid
        points; outside it, or with ``exact``, the percentiles are taken over the resampled lines.
        """
        z = np.atleast_1d(to_scale(orig_pct, self.scale))
        if self.boot_slopes.size == 0:
            p = self.predict(orig_pct)
            return p, p
        if not exact and self.band_x.size > 1 and self.band_low.size == self.band_x.size:
            gx = to_scale(self.band_x, self.scale)
            if z.min() >= gx[0] and z.max() <= gx[-1]:
                lo = np.interp(z, gx, to_scale(self.band_low, self.scale))
                hi = np.interp(z, gx, to_scale(self.band_high, self.scale))
                return from_scale(lo, self.scale), from_scale(hi, self.scale)
        q = [100 * (1 - self.band_level) / 2, 100 * (1 + self.band_level) / 2]
        lo, hi = np.empty(len(z)), np.empty(len(z))
        for k in range(0, len(z), 16):  # in blocks: 100,000 resamples x a long grid would not fit in memory
            lines = self.boot_intercepts[None, :] + z[k:k + 16, None] * self.boot_slopes[None, :]  # rows: faster
            lo[k:k + 16], hi[k:k + 16] = np.percentile(lines, q, axis=1)
        return from_scale(lo, self.scale), from_scale(hi, self.scale)

    def prediction_interval(self, orig_pct, n_new, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prediction, low and high (percent) of a new model's new-set accuracy at ``orig_pct``.

        On the fit's scale the new accuracy of a model is the line plus its own deviation from the trend plus
        the sampling noise of an ``n_new``-image test set. The interval's variance is
        ``tau2 + v(p, n_new) + s2 (1/m + (z - mean z)^2 / Sxx)``: ``s2`` the residual variance of the fit
        (m - 2 degrees of freedom), ``tau2 = max(s2 - mean_i v_i, 0)`` the scatter between models once the
        fitted models' binomial noise ``v_i`` is taken out, ``v(p, n)`` the binomial variance of an accuracy
        ``p`` on ``n`` images carried to the scale by the delta method. Student-t quantile, m - 2 df.
        The original accuracy's own noise (50,000 images) is neglected.
        """
        z = to_scale(orig_pct, self.scale)
        yhat = self.intercept + self.slope * z
        m = len(self.x)
        resid = self.y - (self.intercept + self.slope * self.x)
        s2 = float(resid @ resid) / (m - 2)
        v_fit = binomial_variance(from_scale(self.y, self.scale), self.n_new, self.scale) if self.n_new is not None else 0.0
        tau2 = max(s2 - float(np.mean(v_fit)), 0.0)
        sxx = float(((self.x - self.x.mean()) ** 2).sum())
        var = tau2 + binomial_variance(from_scale(yhat, self.scale), n_new, self.scale) \
            + s2 * (1.0 / m + (z - self.x.mean()) ** 2 / sxx)
        half = stats.t.ppf((1 + level) / 2, m - 2) * np.sqrt(var)
        return from_scale(yhat, self.scale), from_scale(yhat - half, self.scale), from_scale(yhat + half, self.scale)


def binomial_variance(pct, n, scale: str) -> np.ndarray:
    """Variance, on ``scale``, of an accuracy measured on ``n`` images whose true value is ``pct`` percent
    (delta method: ``p(1-p)/n`` times the squared derivative of the transform)."""
    p = np.clip(np.asarray(pct, dtype=float) / 100.0, 1e-6, 1 - 1e-6)
    n = np.asarray(n, dtype=float)
    var_p = p * (1 - p) / n
    if scale == "linear":
        return 1e4 * var_p
    if scale == "probit":
        return var_p / stats.norm.pdf(stats.norm.ppf(p)) ** 2
    if scale == "logit":
        return var_p / (p * (1 - p)) ** 2
    raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")


@functools.lru_cache(maxsize=4)
def _bootstrap_weights(m: int, n_bootstrap: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(n_bootstrap, m))
    idx += (m * np.arange(n_bootstrap))[:, None]
    w = np.bincount(idx.ravel(), minlength=n_bootstrap * m).reshape(n_bootstrap, m).astype(float)
    w.flags.writeable = False  # shared between calls
    return w


def bootstrap_weights(m: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """How often each of ``m`` models is drawn in each of ``n_bootstrap`` resamples with replacement
    (an ``n_bootstrap x m`` read-only float array; ``numpy.random.default_rng(seed)``; the same arguments
    give the same resamples, and they are computed once)."""
    return _bootstrap_weights(int(m), int(n_bootstrap), int(seed))


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
    weights: np.ndarray | None = None,
    model_set: str = "",
) -> TrendFit:
    """Least-squares fit of new on original accuracy (percent) on ``scale``, with a bootstrap band.

    The point estimate is :func:`scipy.stats.linregress` on the transformed points. The band: resample the
    models with replacement ``n_bootstrap`` times (:func:`bootstrap_weights`, seeded; or the given
    ``weights``, so that several scales share their resamples), refit each resample in closed form
    (vectorised), and take the ``(1 - level)/2`` and ``(1 + level)/2`` percentiles of the slope, the
    intercept and the fitted line at each grid point (percentile bootstrap, as the paper's intervals).
    """
    x = to_scale(orig_pct, scale, n_orig)
    y = to_scale(new_pct, scale, n_new)
    m = len(x)
    if m < 3:
        raise ValueError(f"a trend needs at least 3 models, got {m}")
    res = stats.linregress(x, y)
    orig = np.asarray(orig_pct, dtype=float)
    if grid is None:
        lo_pct, hi_pct = float(np.min(orig)), float(np.max(orig))
        pad = 0.05 * (hi_pct - lo_pct)
        grid = np.linspace(max(lo_pct - pad, 0.05), min(hi_pct + pad, 99.95), 32)  # a smooth band: few points do
    grid = np.asarray(grid, dtype=float)
    fit = TrendFit(scale, m, float(res.slope), float(res.intercept), float(res.rvalue), float(res.pvalue),
                   float(res.stderr), level, n_bootstrap, seed, model_set, band_x=grid, x=x, y=y,
                   n_new=None if n_new is None else np.asarray(n_new, dtype=float),
                   orig_range=(float(orig.min()), float(orig.max())))  # fmt: skip
    if n_bootstrap > 0:
        w = bootstrap_weights(m, n_bootstrap, seed) if weights is None else weights
        # weighted sums of each resample: one matrix product instead of n_bootstrap refits
        sw, sx, sy, sxx, sxy = (w @ np.column_stack([np.ones(m), x, y, x * x, x * y])).T
        den = sw * sxx - sx * sx
        ok = den > 1e-12 * sw * sw  # a resample of one distinct model has no slope
        slope = (sw[ok] * sxy[ok] - sx[ok] * sy[ok]) / den[ok]
        icpt = (sy[ok] - slope * sx[ok]) / sw[ok]
        fit.boot_slopes, fit.boot_intercepts = slope, icpt
        fit.band_low, fit.band_high = fit.band_at(grid, exact=True)
        q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
        fit.slope_ci_low, fit.slope_ci_high = (float(v) for v in np.percentile(slope, q))
        fit.intercept_ci_low, fit.intercept_ci_high = (float(v) for v in np.percentile(icpt, q))
    else:
        fit.band_low = fit.band_high = fit.predict(grid)
    return fit


def _fit_points(pairs: pd.DataFrame, original: str, mset: ModelSet) -> tuple[pd.DataFrame, str]:
    """The rows a model set fits (unflagged, with a new accuracy) and the set's name as used."""
    pts = pairs[pairs["new"].notna() & (pairs["flag"] == "")]
    chosen = pts[mset.mask(pts, original)]
    if len(chosen) < 3 and mset.name in ("paper", "release"):
        return pts, "all"  # no release models here (e.g. a store of one's own evaluations): fit everything
    return chosen, mset.name


def fit_trends(
    table: pd.DataFrame,
    *,
    scales: tuple[str, ...] = SCALES,
    model_set: str | ModelSet | list[str] | None = "paper",
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str], TrendFit]]:
    """Fit every (original, new) pair in the table on every scale, over a named model set.

    ``model_set``: a name in :data:`MODEL_SETS` (default ``paper``), a list of model names, or what
    :func:`get_model_set` accepts. Where the set's release is absent, every source is fitted (``model_set`` =
    ``all`` in the row). Flagged rows are left out. The scales of one pair share their bootstrap resamples.
    Returns the fits table (one row per original, new, scale, with ``model_set``) and the
    :class:`TrendFit` objects keyed by (original, new, scale).
    """
    mset = get_model_set(model_set)
    rows, fits = [], {}
    for original, new in test_set_pairs(table):
        pairs = paired_accuracies(table, original, new, level)
        pts, set_name = _fit_points(pairs, original, mset)
        if len(pts) < 3:
            continue
        w = bootstrap_weights(len(pts), n_bootstrap, seed) if n_bootstrap > 0 else None
        for scale in scales:
            fit = fit_trend(pts["orig"], pts["new"], scale, n_orig=pts["n_orig"], n_new=pts["n_new"].astype(float),
                            n_bootstrap=n_bootstrap, level=level, seed=seed, weights=w, model_set=set_name)  # fmt: skip
            fit.members = tuple(zip(pts["source"], pts["model"], strict=True))
            fits[(original, new, scale)] = fit
            rows.append({
                "original": original, "new": new, "scale": scale, "model_set": set_name, "n_models": fit.n_models,
                "fit_sources": ";".join(sorted(set(pts["source"]))),
                "slope": fit.slope, "intercept": fit.intercept, "r": fit.r, "p_value": fit.p_value,
                "stderr": fit.stderr, "slope_ci_low": fit.slope_ci_low, "slope_ci_high": fit.slope_ci_high,
                "intercept_ci_low": fit.intercept_ci_low, "intercept_ci_high": fit.intercept_ci_high,
                "band_level": level, "n_bootstrap": n_bootstrap, "seed": seed,
            })  # fmt: skip
    return pd.DataFrame(rows), fits


def standard_models(pairs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Which rows of a :func:`paired_accuracies` frame are *standard* models (Taori et al. 2020: trained on
    the original training set only, no extra data, no robustness intervention), and where that comes from.

    Rules, in order: a flagged row is never standard; a non-empty ``model_type`` (metadata carried by the
    table) decides (``standard`` or not); otherwise a release model of ImageNetV2 / CIFAR-10.1 is standard
    except the Fisher-vector models (not a network trained end to end: ``other``); any other row without
    metadata is unknown and left out of the baseline. Returns (is_standard, basis) with basis one of
    ``metadata``, ``rule: release model``, ``rule: Fisher vectors``, ``no metadata``, ``flagged``.
    """
    mt = pairs["model_type"] if "model_type" in pairs else pd.Series("", index=pairs.index)
    mt = mt.fillna("").astype(str)
    release = pairs["source"].isin(REFERENCE_SOURCES.values())
    fv = pd.Series(False, index=pairs.index)
    for src, names in FISHER_VECTOR_MODELS.items():
        fv |= (pairs["source"] == src) & pairs["model"].isin(names)
    flagged = pairs["flag"].fillna("") != ""
    has_meta = mt != ""
    is_std = np.where(has_meta, mt == "standard", release & ~fv) & ~flagged
    basis = np.select([flagged, has_meta, fv, release], ["flagged", "metadata", "rule: Fisher vectors", "rule: release model"],
                      "no metadata")  # fmt: skip
    return pd.Series(is_std, index=pairs.index), pd.Series(basis, index=pairs.index)


def residuals(
    table: pd.DataFrame,
    fits: dict[tuple[str, str, str], TrendFit],
    *,
    prediction_scale: str = "probit",
    level: float = 0.95,
    er_margin: float = ER_MARGIN,
) -> pd.DataFrame:
    """Every (source, model) of every pair, placed against the trends.

    Columns added to :func:`paired_accuracies`:

    - ``predicted_new``, ``predicted_new_low``, ``predicted_new_high``: the ``level`` prediction interval of
      the model set's trend on ``prediction_scale`` (:meth:`TrendFit.prediction_interval`), for every model;
      ``prediction_scale``, ``prediction_model_set``; ``extrapolated``: the model's original accuracy lies
      outside the fitted models' range.
    - ``effective_robustness`` (points): new minus the logit-scale baseline of the standard models
      (:func:`standard_models`), NaN without a new accuracy or outside the baseline's original-accuracy
      range widened by ``er_margin`` points; ``er_baseline_prediction``, ``model_type`` (as given or as the
      rules decided: ``standard``/``""``), ``standard_basis``, ``in_er_baseline``.
    - ``linear_residual`` (points): new minus the model set's linear trend.
    """
    out = []
    for original, new in test_set_pairs(table):
        fit = fits.get((original, new, prediction_scale))
        lin = fits.get((original, new, "linear"))
        if fit is None:
            continue
        pairs = paired_accuracies(table, original, new)
        n_new = pairs["n_new"].astype(float).fillna(get_info(new).num_images).to_numpy()
        pred, lo, hi = fit.prediction_interval(pairs["orig"].to_numpy(), n_new, level)
        pairs["predicted_new"], pairs["predicted_new_low"], pairs["predicted_new_high"] = pred, lo, hi
        pairs["prediction_scale"] = prediction_scale
        pairs["prediction_model_set"] = fit.model_set
        pairs["extrapolated"] = (pairs["orig"] < fit.orig_range[0]) | (pairs["orig"] > fit.orig_range[1])

        is_std, basis = standard_models(pairs)
        base = pairs[is_std & pairs["new"].notna()]
        pairs["effective_robustness"] = np.nan
        pairs["er_baseline_prediction"] = np.nan
        if len(base) >= 3:
            bfit = fit_trend(base["orig"], base["new"], "logit", n_orig=base["n_orig"],
                             n_new=base["n_new"].astype(float), n_bootstrap=0)  # fmt: skip
            inside = pairs["orig"].between(base["orig"].min() - er_margin, base["orig"].max() + er_margin)
            bpred = bfit.predict(pairs["orig"])
            pairs["er_baseline_prediction"] = np.where(inside, bpred, np.nan)
            pairs["effective_robustness"] = np.where(inside, pairs["new"] - bpred, np.nan)
        if "model_type" not in pairs:
            pairs["model_type"] = ""
        by_rule = np.select([basis == "rule: release model", basis == "rule: Fisher vectors"], ["standard", "other"], "")
        pairs["model_type"] = np.where(pairs["model_type"] != "", pairs["model_type"], by_rule)
        pairs["standard_basis"] = basis
        pairs["in_er_baseline"] = is_std & pairs["new"].notna()
        pairs["linear_residual"] = pairs["new"] - lin.predict(pairs["orig"]) if lin is not None else np.nan
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
