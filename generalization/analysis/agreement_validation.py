"""Agreement on the line checked against labels: where a new set's labels exist, how far the label-free
predictions of :mod:`generalization.analysis.agreement` are from the measured top-1, beside the ordinary
accuracy line fitted with the labels; the REPORT.md section of that validation, and the figure.

The prediction itself never reads the new set's labels; everything here does (after the prediction), except
:func:`plot_agreement`, which draws the measured top-1 only when a :func:`~.agreement.predict_unlabeled` result
holds it. The validation's method and rules: docs/label_free.md and ``benchmarks/agreement_validation.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..files import DataError
from ..store.records import PredictionStore
from ..test_sets import get_info
from .agreement import AgreementResult, _store_top1, _wls_line, agreement_on_the_line, predict_unlabeled
from .trends import from_scale, to_scale

__all__ = [
    "accuracy_line_reference",
    "validate",
    "summarize_validation",
    "bootstrap_validation_error",
    "agreement_report_section",
    "plot_agreement",
]


# ------------------------------------------------------------------------------------------- validation


def accuracy_line_reference(original_pct: np.ndarray, new_pct: np.ndarray, n_new: int, *, scale: str = "probit",
                            level: float = 0.95) -> pd.DataFrame:
    """The ordinary accuracy-line prediction (uses labels), leave-one-out, as a reference for the label-free one.

    Each model's new-set top-1 is predicted by the OLS line of ``scale(new)`` on ``scale(original)`` fitted on
    the *other* models, with the OLS prediction interval (Student t) widened by the binomial variance of an
    accuracy measured on ``n_new`` images. Returns ``predicted, low, high`` in percent.
    """
    x = to_scale(original_pct, scale)
    y = to_scale(new_pct, scale, n_new)
    n = len(x)
    pred, low, high = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        m = np.arange(n) != i
        slope, intercept = _wls_line(x[m], y[m])
        r = y[m] - (slope * x[m] + intercept)
        s2 = np.sum(r**2) / (m.sum() - 2)
        xm = x[m].mean()
        se2 = s2 * (1 + 1 / m.sum() + (x[i] - xm) ** 2 / np.sum((x[m] - xm) ** 2))
        zi = slope * x[i] + intercept
        p = from_scale(zi, scale) / 100
        dens = stats.norm.pdf(zi) if scale == "probit" else p * (1 - p)
        half = stats.t.ppf(0.5 + level / 2, m.sum() - 2) * np.sqrt(se2 + p * (1 - p) / n_new / dens**2)
        pred[i], low[i], high[i] = zi, zi - half, zi + half
    return pd.DataFrame({"predicted": from_scale(pred, scale), "low": from_scale(low, scale),
                         "high": from_scale(high, scale)})


def validate(store: str | os.PathLike | PredictionStore, original: str, new: str, **kwargs: Any) -> pd.DataFrame:
    """Label-free predictions beside the labelled truth and the accuracy-line reference, one row per model.

    The prediction is made by :func:`predict_unlabeled` (which never reads the new set's labels); the new set's
    accuracies are then read from the store. Columns: the prediction columns plus ``reference_new_top1``,
    ``reference_low``, ``reference_high`` (:func:`accuracy_line_reference` on the same models and scale).
    """
    df = predict_unlabeled(store, original, new, **kwargs)
    result = df.attrs["result"]
    if df["actual_new_top1"].isna().any():
        raise DataError(f"validation needs labels for {new} in the store")
    ref = accuracy_line_reference(df["original_top1"].to_numpy(), df["actual_new_top1"].to_numpy(),
                                  result.fit["n_new"], scale=result.fit["scale"], level=result.fit["level"])
    df["reference_new_top1"] = ref["predicted"].to_numpy()
    df["reference_low"] = ref["low"].to_numpy()
    df["reference_high"] = ref["high"].to_numpy()
    df.attrs["result"] = result
    return df


def summarize_validation(per_model: pd.DataFrame, *, new: str, method: str = "") -> dict[str, Any]:
    """MAE, max absolute error, mean signed error (points), interval coverage (%) and mean interval width (points)
    of both predictions; for a :func:`validate` result also the mean error on the fit's scale and its offset term."""
    out: dict[str, Any] = {"new_test_set": new, "method": method, "n_models": len(per_model)}
    actual = per_model["actual_new_top1"].to_numpy()
    for tag, p, lo, hi in (("agreement", "predicted_new_top1", "predicted_low", "predicted_high"),
                           ("accuracy_line", "reference_new_top1", "reference_low", "reference_high")):
        err = per_model[p].to_numpy() - actual
        out[f"{tag}_mae"] = float(np.mean(np.abs(err)))
        out[f"{tag}_max_error"] = float(np.max(np.abs(err)))
        out[f"{tag}_mean_error"] = float(np.mean(err))
        out[f"{tag}_coverage"] = float(100 * np.mean((actual >= per_model[lo]) & (actual <= per_model[hi])))
        out[f"{tag}_interval_width"] = float(np.mean(per_model[hi] - per_model[lo]))
    out["no_drop_mae"] = float(np.mean(np.abs(per_model["original_top1"].to_numpy() - actual)))
    result = per_model.attrs.get("result")
    if result is not None:
        # the shared offset on the fit's scale: what DEFAULT_OFFSET_SD is calibrated from
        sc, n_new = result.fit["scale"], result.fit["n_new"]
        out["agreement_mean_error_scale"] = float(np.mean(to_scale(per_model["predicted_new_top1"], sc, n_new)
                                                          - to_scale(actual, sc, n_new)))
        out["offset_sd"] = float(result.fit["offset_sd"])
    return out


def bootstrap_validation_error(store: str | os.PathLike | PredictionStore, original: str, new: str, *,
                               n_resamples: int = 100, seed: int = 0, **kwargs: Any) -> pd.DataFrame:
    """How much the label-free MAE moves with the new set's sample of images (validation only: reads its labels).

    The new set's images are resampled with replacement ``n_resamples`` times (seeded); each time the agreements,
    the predictions (:func:`agreement_on_the_line`, ``kwargs``) and the measured accuracies are recomputed on the
    resample. Returns one row per resample: ``mae``, ``mean_error`` (points). The original set is held fixed.
    """
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    labels_o, labels_n = store.labels(original), store.labels(new)
    if labels_o is None or labels_n is None:
        raise DataError(f"store {store.root}: labels for both {original} and {new} are needed")
    orig, _ = _store_top1(store, original, kwargs.pop("models", None), kwargs.pop("sources", None))
    newp, _ = _store_top1(store, new, list(orig), None)
    info = get_info(original)
    kwargs.setdefault("num_classes", info.num_classes if info is not None else None)
    kwargs.setdefault("n_bootstrap", 0)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_resamples):
        ii = rng.integers(0, len(labels_n), len(labels_n))
        res = agreement_on_the_line(orig, labels_o, {m: v[ii] for m, v in newp.items()}, **kwargs)
        actual = res.table["model"].map({m: 100 * np.mean(newp[m][ii] == labels_n[ii]) for m in newp})
        err = res.table["predicted_new_top1"] - actual
        rows.append({"mae": float(err.abs().mean()), "mean_error": float(err.mean())})
    return pd.DataFrame(rows)


def agreement_report_section(summary: pd.DataFrame, *, title: str = "Label-free prediction (agreement on the line)",
                             notes: Sequence[str] = (), method: str = "aline-d", scale: str = "probit") -> str:
    """A markdown section for REPORT.md from a table of :func:`summarize_validation` rows.

    ``summary`` may be ``results/label-free/validation.csv`` as it is: rows of other methods or scales (columns
    ``method``, ``scale``) are left out, keeping ``method`` on ``scale``.

    Each row needs ``new_test_set, n_models, agreement_mae, agreement_max_error, agreement_mean_error,
    agreement_coverage,
    accuracy_line_mae, accuracy_line_max_error, accuracy_line_coverage`` (and optionally ``method``,
    ``r2``, ``no_drop_mae``, ``level``, ``offset_sd``; ``agreement_mae_ci_low`` and ``agreement_mae_ci_high``,
    shown beside the MAE; ``agreement_coverage_no_offset``, shown beside the coverage).
    """
    if "method" in summary:
        summary = summary[summary["method"].fillna(method).isin([method, ""])]
    if "scale" in summary:
        summary = summary[summary["scale"] == scale]
    if summary.empty:
        raise DataError(f"no validation rows for method {method!r} on the {scale} scale")
    level = float(summary["level"].iloc[0]) if "level" in summary else 0.95
    has_ci = {"agreement_mae_ci_low", "agreement_mae_ci_high"} <= set(summary)
    has_no_offset = "agreement_coverage_no_offset" in summary
    has_offset = "offset_sd" in summary and bool((summary["offset_sd"].fillna(0) > 0).any())
    lines = [
        f"## {title}",
        "",
        "Each model's top-1 on a new test set predicted without the new set's labels, from the pairwise top-1 "
        f"agreement of the models on both sets (Baek et al. 2022; {method}, {scale} scale), beside the ordinary "
        "accuracy line fitted with the labels on the same scale (leave-one-out). Errors in points (predicted - "
        f"measured), coverage = share of models whose measured top-1 lies in the {100 * level:.0f} % interval"
        + (" (including a term for a systematic offset between the agreement and accuracy lines, of the size seen "
           "on labelled shifts: column offset_sd, on the scale)" if has_offset else "") + "."
        + (" In brackets: the 2.5-97.5 % range of the MAE over resamples of the new set's images (how much it "
           "depends on the particular images; resampling adds noise, so the range sits above small MAEs)"
           if has_ci else "")
        + (" and the coverage of the interval without the offset term" if has_no_offset else "")
        + ("." if has_ci or has_no_offset else ""),
        "",
        "| new test set | models | agreement R² | label-free MAE | max error | mean error | coverage "
        "| accuracy-line MAE | max error | coverage | \"no drop\" MAE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def given(r: pd.Series, col: str) -> bool:
        return col in r and pd.notna(r.get(col))

    for _, r in summary.iterrows():
        r2 = f"{r['r2']:.3f}" if given(r, "r2") else ""
        nd = f"{r['no_drop_mae']:.2f}" if given(r, "no_drop_mae") else ""
        mae = f"{r['agreement_mae']:.2f}"
        if has_ci and given(r, "agreement_mae_ci_low") and given(r, "agreement_mae_ci_high"):
            mae += f" ({r['agreement_mae_ci_low']:.2f}–{r['agreement_mae_ci_high']:.2f})"
        cov = f"{r['agreement_coverage']:.0f} %"
        if has_no_offset and given(r, "agreement_coverage_no_offset"):
            cov += f" ({r['agreement_coverage_no_offset']:.0f} %)"
        lines.append(
            f"| {r['new_test_set']} | {int(r['n_models'])} | {r2} | {mae} | "
            f"{r['agreement_max_error']:.2f} | {r['agreement_mean_error']:+.2f} | {cov} | "
            f"{r['accuracy_line_mae']:.2f} | "
            f"{r['accuracy_line_max_error']:.2f} | {r['accuracy_line_coverage']:.0f} % | {nd} |")
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------- figure

_TICKS = [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8]


def plot_agreement(df: pd.DataFrame, ax: Any = None, *, title: str | None = None) -> Any:
    """Draw the agreement points, the agreement line and each model's prediction (and measured top-1 if known).

    ``df`` is a :func:`predict_unlabeled` result. Axes in percent on the fit's scale. Returns the axes.
    """
    import matplotlib.pyplot as plt

    result: AgreementResult = df.attrs["result"]
    scale, fit = result.fit["scale"], result.fit
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    n_o, n_n = fit["n_original"], fit["n_new"]
    xa = to_scale(result.pairs["agreement_original"], scale, n_o)
    ya = to_scale(result.pairs["agreement_new"], scale, n_n)
    xm = to_scale(df["original_top1"], scale, n_o)
    yl = to_scale(df["predicted_low"], scale, n_n)
    everything = np.concatenate([xa, ya, xm, yl])
    span = everything.max() - everything.min()
    lo, hi = everything.min() - 0.05 * span, everything.max() + 0.05 * span
    ax.plot([lo, hi], [lo, hi], ls="--", color="0.6", lw=1, label="y = x")
    ax.scatter(xa, ya, s=6, color="0.5", alpha=0.5, lw=0, label=f"model pairs' agreement ({fit['n_pairs']})")
    grid = np.linspace(lo, hi, 50)
    ax.plot(grid, fit["slope"] * grid + fit["intercept"], color="0.3", lw=1.2, label="agreement line")
    yp = to_scale(df["predicted_new_top1"], scale, n_n)
    err = np.vstack([yp - yl, to_scale(df["predicted_high"], scale, n_n) - yp])
    ax.errorbar(xm, yp, yerr=err, fmt="o", ms=3.5, color="tab:blue", elinewidth=0.8,
                label=f"predicted top-1, {100 * fit['level']:.0f} % interval")
    if df["actual_new_top1"].notna().any():
        ax.scatter(xm, to_scale(df["actual_new_top1"], scale, n_n), marker="x", s=22, color="tab:orange", zorder=3,
                   label="measured top-1 (labels)")
    ticks = [t for t in _TICKS if lo <= to_scale(t, scale) <= hi]
    ax.set_xticks(to_scale(ticks, scale), [f"{t:g}" for t in ticks])
    ax.set_yticks(to_scale(ticks, scale), [f"{t:g}" for t in ticks])
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"{fit.get('original', 'original')}: top-1 / agreement (%, {scale} scale)")
    ax.set_ylabel(f"{fit.get('new', 'new')}: top-1 / agreement (%, {scale} scale)")
    ax.set_title(title or f"Agreement on the line ({fit['method']}, {fit['n_models']} models)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return ax

