"""The distribution-shift landscape: every natural shift on the paper's axes, Taori-style.

For each natural shift of ImageNet in the accuracy table (ImageNetV2 variants, ImageNet-A, -R, -Sketch,
ObjectNet, ImageNet-Vid-Robust, YTBB-Robust; see :data:`generalization.test_sets.CATALOG`), paired with the
original it is compared against (e.g. ImageNet-A with ImageNet validation on the same 200 classes):

- **baseline**: least squares of shift accuracy on original accuracy on the **logit** scale, fitted on the
  **standard** models only (``model_type == "standard"``: trained on ImageNet-1k without a robustness
  intervention; Taori et al. 2020), all sources pooled (each model's two accuracies come from the same
  source), flagged rows left out. Band: percentile bootstrap over the standard models (seeded), 95 %.
  ``r2`` is the baseline's R^2 on the logit scale (how well one line describes the standard models).
- **effective robustness** of every model: shift accuracy - the baseline's prediction at its original
  accuracy (percentage points; Taori et al.'s definition, on the logit fit).
- **on the line**: a shift is called "on the line" when the standard models' baseline has R^2 >= 0.9 on the
  logit scale (Miller et al. 2021 call R^2 >= 0.9 strong linear correlation, "accuracy on the line").
- **more data above the line**: the median effective robustness of models trained with more data, and
  how many of them lie above the baseline's band.

:func:`write_landscape` writes ``landscape/`` (one figure and one CSV per shift, ``baselines.csv``,
``effective_robustness.csv``, ``overview.png``) and returns the markdown section for REPORT.md. ImageNetV2's
duplicate variants (the released JPEGs, the 1-in-8 class subsample) get their table rows but no figure of
their own: their points and lines coincide with ImageNetV2's.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..files import atomic_write_text, csv_text
from ..model_types import infer_model_type
from ..sources import baseline_sources, get_source
from ..test_sets import CATALOG, TEST_SETS, natural_shifts
from .plots import save_figure
from .trends import TrendFit, fit_trend, from_scale, to_scale

__all__ = ["SCALE", "ON_LINE_R2", "TYPE_STYLES", "landscape_pairs", "fit_landscape", "plot_shift", "plot_overview",
           "landscape_section", "write_landscape"]  # fmt: skip

SCALE = "logit"
ON_LINE_R2 = 0.9
MIN_BASELINE_MODELS = 5

#: colour and label per model type (the testbed's colours for its categories)
TYPE_STYLES = {
    "standard": ("tab:blue", "Standard training"),
    "more_data": ("tab:green", "Trained with more data"),
    "robustness_intervention": ("tab:brown", "Robustness intervention"),
    "other": ("tab:purple", "Other (low-accuracy CNNs, pixels,\nrandom features, distilled)"),
    "": ("0.6", "Type unknown"),
}
_TICKS = [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99]


def landscape_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(original, shift) for every natural ImageNet shift present with its original, catalog order."""
    present = set(table["test_set"])
    return [(CATALOG[s].original, s) for s in natural_shifts(present) if CATALOG[s].original in present]


def _title(name: str) -> str:
    return CATALOG[name].title if name in CATALOG else name


def _pairs_with_types(table: pd.DataFrame, original: str, shift: str) -> pd.DataFrame:
    """One row per (source, model) with both accuracies (same source), unflagged, with the model type."""
    cols = ["source", "model", "n", "top1_correct", "top1"]
    flag = table["flag"].fillna("") if "flag" in table else pd.Series("", index=table.index)
    mtype = table["model_type"].fillna("") if "model_type" in table else pd.Series("", index=table.index)
    t = table.assign(flag=flag, model_type=mtype)
    if "model_type" not in table:  # e.g. read from an accuracies.csv without the column: infer by name
        t["model_type"] = [infer_model_type(s, m) for s, m in zip(t["source"], t["model"], strict=True)]
    a = t.loc[(t["test_set"] == original) & (t["flag"] == ""), cols]
    b = t.loc[(t["test_set"] == shift) & (t["flag"] == ""), cols + ["model_type"]]
    a = a.rename(columns={"n": "n_orig", "top1_correct": "correct_orig", "top1": "orig"})
    b = b.rename(columns={"n": "n_new", "top1_correct": "correct_new", "top1": "new"})
    p = a.merge(b, on=["source", "model"], how="inner")
    p.insert(0, "new_test_set", shift)
    p.insert(0, "original_test_set", original)
    return p.sort_values(["source", "model"], kind="stable").reset_index(drop=True)


def fit_landscape(
    table: pd.DataFrame, *, n_bootstrap: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, TrendFit]]:
    """Baselines and effective robustness for every natural shift in ``table``.

    Returns ``(baselines, per_model, fits)``: one row per shift (``original, shift, n_models, n_standard,
    sources, slope, intercept, slope_ci_low, slope_ci_high, r2, on_line, er_median_<type>,
    n_above_band_more_data, ...``), one row per (shift, source, model) with ``effective_robustness``, and
    the :class:`~generalization.analysis.trends.TrendFit` per shift. Shifts with fewer than
    :data:`MIN_BASELINE_MODELS` standard models get no baseline (listed with ``slope`` NaN).
    """
    rows, per_model, fits = [], [], {}
    for original, shift in landscape_pairs(table):
        p = _pairs_with_types(table, original, shift)
        if p.empty:
            continue
        std = p[p["model_type"] == "standard"]
        row = {"original": original, "shift": shift, "title": _title(shift), "n_models": len(p),
               "n_standard": len(std), "sources": ";".join(sorted(set(p["source"]))), "scale": SCALE,
               "band_level": level, "n_bootstrap": n_bootstrap, "seed": seed}  # fmt: skip
        if len(std) >= MIN_BASELINE_MODELS:
            fit = fit_trend(std["orig"], std["new"], SCALE, n_orig=std["n_orig"], n_new=std["n_new"].astype(float),
                            n_bootstrap=n_bootstrap, level=level, seed=seed)  # fmt: skip
            fits[shift] = fit
            p["predicted"] = fit.predict(p["orig"])
            lo, hi = fit.band_at(p["orig"])
            p["predicted_low"], p["predicted_high"] = lo, hi
            p["effective_robustness"] = p["new"] - p["predicted"]
            r2 = fit.r**2
            row.update({"slope": fit.slope, "intercept": fit.intercept, "slope_ci_low": fit.slope_ci_low,
                        "slope_ci_high": fit.slope_ci_high, "r2": r2, "on_line": bool(r2 >= ON_LINE_R2),
                        # the baseline's shift accuracy where the original is 50 / 75 / 90 %
                        **{f"baseline_at_{a}": float(fit.predict(a)) for a in (50, 75, 90)}})  # fmt: skip
            for t in ("standard", "more_data", "robustness_intervention", "other"):
                g = p[p["model_type"] == t]
                row[f"n_{t}"] = len(g)
                row[f"er_median_{t}"] = float(g["effective_robustness"].median()) if len(g) else np.nan
            md = p[p["model_type"] == "more_data"]
            row["n_above_band_more_data"] = int((md["new"] > md["predicted_high"]).sum())
            row["n_above_band_all"] = int((p["new"] > p["predicted_high"]).sum())
        else:
            row.update({"slope": np.nan, "intercept": np.nan, "r2": np.nan, "on_line": None})
            for c in ("effective_robustness", "predicted", "predicted_low", "predicted_high"):
                p[c] = np.nan
        p.insert(0, "shift", shift)
        rows.append(row)
        per_model.append(p)
    baselines = pd.DataFrame(rows)
    pm = pd.concat(per_model, ignore_index=True) if per_model else pd.DataFrame()
    if len(pm):
        pm = pm.sort_values(["shift", "effective_robustness"], ascending=[True, False], kind="stable", na_position="last")
    return baselines, pm.reset_index(drop=True), fits


def _tick_values(lo: float, hi: float, max_ticks: int = 9) -> list[float]:
    """Percent ticks inside lo..hi, at least 1/max_ticks of the logit range apart so labels never collide."""
    gap = (to_scale(hi, SCALE) - to_scale(lo, SCALE)) / max_ticks
    ticks: list[float] = []
    for v in _TICKS:
        if lo <= v <= hi and (not ticks or to_scale(v, SCALE) - to_scale(ticks[-1], SCALE) >= gap):
            ticks.append(v)
    return ticks if len(ticks) >= 3 else list(np.round(np.linspace(lo, hi, 5), 1))


def _ticks(ax, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    for lim, setter in ((xlim, ax.set_xticks), (ylim, ax.set_yticks)):
        ticks = _tick_values(*lim)
        setter(to_scale(ticks, SCALE), [f"{t:g}" for t in ticks])


def plot_shift(per_model: pd.DataFrame, shift: str, fit: TrendFit | None, ax=None):
    """Taori-style: shift vs original top-1 on logit axes (percent ticks), y = x, the standard-model baseline
    with its band, points coloured by model type (marker by source)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8.8, 5.2))
    p = per_model[per_model["shift"] == shift]
    original = p["original_test_set"].iloc[0]
    t = lambda v: to_scale(v, SCALE)  # noqa: E731
    # separate ranges for the two axes (a shift can sit far below y = x); each padded by 4 % in logit units
    def lim(v: pd.Series) -> tuple[float, float]:
        a, b = t(max(v.min(), 0.3)), t(min(v.max(), 99.7))
        pad = 0.06 * (b - a) + 0.05
        return float(np.clip(from_scale(a - pad, SCALE), 0.2, 99.8)), float(np.clip(from_scale(b + pad, SCALE), 0.2, 99.8))

    xlim, ylim = lim(p["orig"]), lim(p["new"])
    diag = np.linspace(max(xlim[0], ylim[0]), min(xlim[1], ylim[1]), 100)
    if len(diag) and diag[0] < diag[-1]:
        ax.plot(t(diag), t(diag), ls="--", color="black", lw=1, label="y = x", zorder=1)
    if fit is not None:
        grid = np.linspace(*xlim, 200)
        blo, bhi = fit.band_at(grid)
        ax.fill_between(t(grid), t(blo), t(bhi), color="tab:blue", alpha=0.15, lw=0, zorder=2,
                        label=f"{int(100 * fit.band_level)} % bootstrap band")  # fmt: skip
        ax.plot(t(grid), t(fit.predict(grid)), color="tab:blue", lw=1.6, zorder=3,
                label=f"Standard-model baseline (R² {fit.r**2:.2f})")  # fmt: skip
    for mtype, (color, label) in TYPE_STYLES.items():
        g = p[p["model_type"] == mtype]
        if g.empty:
            continue
        for source, h in g.groupby("source", sort=True):
            ax.scatter(t(h["orig"]), t(h["new"]), s=16, marker=get_source(source).landscape_marker, color=color,
                       alpha=0.8, edgecolors="white", linewidths=0.3, zorder=4)  # fmt: skip
        ax.scatter([], [], s=16, color=color, label=f"{label} ({len(g)})")
    for source in sorted(set(p["source"])):
        ax.scatter([], [], s=16, marker=get_source(source).landscape_marker, facecolors="none", edgecolors="0.3",
                   label=f"marker: {source}")  # fmt: skip
    ax.set_xlim(t(xlim[0]), t(xlim[1]))
    ax.set_ylim(t(ylim[0]), t(ylim[1]))
    _ticks(ax, xlim, ylim)
    ax.set_xlabel(f"{_title(original)}\ntop-1 accuracy (%, logit scale)")
    ax.set_ylabel(f"{_title(shift)} top-1 accuracy (%, logit scale)")
    ax.set_title(f"{_title(shift)}", fontsize=11)
    ax.grid(True, color="0.9", lw=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7.5, frameon=False)  # outside: no point hidden
    return ax


def plot_overview(baselines: pd.DataFrame, fits: dict[str, TrendFit]):
    """Every natural shift's standard-model baseline on one logit plot, with y = x.

    Each line spans its standard models' original accuracies. ImageNetV2's duplicates (the released JPEGs,
    the 1-in-8 class subsample) are left out: they coincide with ImageNetV2's lines (see baselines.csv).
    """
    fig, ax = plt.subplots(figsize=(10, 6.2))
    lo, hi = 1.0, 98.5
    t = lambda v: to_scale(v, SCALE)  # noqa: E731
    diag = np.linspace(20, hi, 100)
    ax.plot(t(diag), t(diag), ls="--", color="black", lw=1, label="y = x")
    shown = baselines[baselines["slope"].notna() & ~baselines["shift"].map(_duplicate_variant)]
    shown = shown.sort_values("baseline_at_75", ascending=False)
    colors = plt.get_cmap("tab10").colors
    styles = ["-", "--", "-.", ":"]
    for i, r in enumerate(shown.itertuples()):
        fit = fits[r.shift]
        grid = np.linspace(max(fit.band_x.min(), 20), min(fit.band_x.max(), hi), 100)
        ax.plot(t(grid), t(fit.predict(grid)), lw=2, color=colors[i % 10], ls=styles[(i // 10) % 4],
                label=f"{r.title}: slope {r.slope:.2f}, R² {r.r2:.2f}")  # fmt: skip
    ax.set_xlim(t(20), t(hi))
    ax.set_ylim(t(lo), t(hi))
    _ticks(ax, (20, hi), (lo, hi))
    ax.set_xlabel("Original test set top-1 accuracy (%, logit scale)\n(ImageNet validation, restricted to the shift's classes)")
    ax.set_ylabel("Shifted test set top-1 accuracy (%, logit scale)")
    ax.set_title("Natural distribution shifts of ImageNet: standard-model baselines (logit fits)", fontsize=11)
    ax.grid(True, color="0.9", lw=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              title="shift (highest at 75 % first)", title_fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def landscape_section(baselines: pd.DataFrame, per_model: pd.DataFrame, figures: list[Path], out: Path,
                      top: int = 3) -> str:  # fmt: skip
    """The REPORT.md section: which shifts lie on the line, where more-data models rise above it."""
    if baselines.empty:
        return ""
    L = ["\n## The distribution-shift landscape (natural shifts of ImageNet)\n",
         f"Baseline per shift: least squares on the {SCALE} scale of shift on original top-1, fitted on the "
         "standard models only (trained on ImageNet-1k, no robustness intervention), all sources pooled "
         "(each model's two accuracies from one source), flagged rows left out; "
         f"band: 95 % percentile bootstrap over the standard models. \"On the line\": R² >= {ON_LINE_R2} on the "
         "logit scale. Effective robustness (ER) = shift accuracy - the baseline's prediction, in points. "
         "Original = ImageNet validation on the shift's classes where its label space is smaller.\n"]  # fmt: skip
    fitted = baselines[baselines["slope"].notna()]
    rows = []
    for r in fitted.itertuples():
        rows.append(f"| {r.title} | {_title(r.original)} | {r.sources} | {r.n_standard}/{r.n_models} | {r.slope:.2f} | "
                    f"{r.intercept:+.2f} | {r.r2:.2f} | {'yes' if r.on_line else 'no'} | {r.baseline_at_75:.1f} | "
                    f"{_fmt(r.er_median_more_data)} ({r.n_more_data}; {r.n_above_band_more_data} above band) | "
                    f"{_fmt(r.er_median_robustness_intervention)} ({r.n_robustness_intervention}) |")  # fmt: skip
    L.append("| shift | original | sources | standard/all models | slope | intercept | R² | on the line | "
             "baseline at 75 % | more data: median ER (n; above band) | robustness interventions: median ER (n) |")
    L.append("|" + "---|" * 11)
    L += rows
    on = fitted[fitted["on_line"] == True]  # noqa: E712
    off = fitted[fitted["on_line"] == False]  # noqa: E712
    L.append("")
    if len(on):
        L.append(f"**On the line** (R² >= {ON_LINE_R2}): " + ", ".join(f"{r.title} (R² {r.r2:.2f})" for r in on.itertuples()) + ".")
    if len(off):
        L.append(f"**Not on one line** (R² < {ON_LINE_R2}): " + ", ".join(f"{r.title} (R² {r.r2:.2f})" for r in off.itertuples()) + ".")
    # "rises above": most more-data models lie above the band (not only a positive median)
    md = fitted[fitted["n_more_data"] > 0]
    above = md[(md["er_median_more_data"] > 0) & (md["n_above_band_more_data"] > md["n_more_data"] / 2)]
    near = md[~md.index.isin(above.index)]

    def few(r) -> str:
        return ", only a few models" if r.n_more_data < 5 else ""

    if len(above):
        L.append("**Models trained with more data rise above the line** (most of them above the band): "
                 + ", ".join(f"{r.title} (median ER {r.er_median_more_data:+.1f} points, {r.n_above_band_more_data} of "
                             f"{r.n_more_data} above the band{few(r)})"
                             for r in above.sort_values("er_median_more_data", ascending=False).itertuples())
                 + ".")  # fmt: skip
    if len(near):
        L.append("**More data stays near the line** (at most half above the band): "
                 + ", ".join(f"{r.title} ({r.er_median_more_data:+.1f}, {r.n_above_band_more_data} of {r.n_more_data})"
                             for r in near.itertuples()) + ".")  # fmt: skip
    none = baselines[baselines["slope"].isna()]
    if len(none):
        L.append(f"No baseline (fewer than {MIN_BASELINE_MODELS} standard models): "
                 + ", ".join(f"{r.title} ({r.n_standard})" for r in none.itertuples()) + ".")  # fmt: skip
    if len(per_model) and per_model["effective_robustness"].notna().any():
        L.append(f"\nHighest effective robustness per shift (top {top}; all models in `landscape/<shift>.csv`):\n")
        L.append("| shift | model (source, type): ER in points |")
        L.append("|---|---|")
        for shift, g in per_model[per_model["effective_robustness"].notna()].groupby("shift", sort=False):
            best = g.nlargest(top, "effective_robustness")
            L.append(f"| {_title(shift)} | " + "; ".join(
                f"{r.model} ({r.source}, {r.model_type or 'unknown'}): {r.effective_robustness:+.1f}"
                for r in best.itertuples()) + " |")  # fmt: skip
    L.append("")
    L += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figures]
    return "\n".join(L) + "\n"


def _duplicate_variant(shift: str) -> bool:
    """ImageNetV2 re-read from the released JPEGs, or on 1 in 8 classes: same images as an ImageNetV2 set."""
    return shift.endswith("-as-released") or "subsampled" in shift


def _fmt(v: float) -> str:
    return "" if v is None or np.isnan(v) else f"{v:+.1f}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_landscape(
    table: pd.DataFrame, out: str | os.PathLike, *, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[list[Path], str]:
    """Write ``OUT/landscape/`` and return ``(paths written, REPORT.md section)``.

    Does nothing (``([], "")``) unless the table holds a natural shift beyond the paper's own pairs
    (ImageNetV2 against ImageNet validation from the release is the paper's analysis, drawn elsewhere).
    """
    out = Path(out)
    pairs = landscape_pairs(table)
    beyond = [s for _, s in pairs if s not in TEST_SETS]
    others = table[table["test_set"].isin([s for _, s in pairs])]["source"]
    if not beyond and set(others) <= set(baseline_sources().values()):
        return [], ""
    baselines, per_model, fits = fit_landscape(table, n_bootstrap=n_bootstrap, level=level, seed=seed)
    if baselines.empty:
        return [], ""
    d = out / "landscape"
    written = [atomic_write_text(d / "baselines.csv", csv_text(baselines))]
    keep = ["shift", "original_test_set", "source", "model", "model_type", "orig", "new", "predicted", "predicted_low",
            "predicted_high", "effective_robustness", "n_orig", "correct_orig", "n_new", "correct_new"]  # fmt: skip
    pm = per_model[[c for c in keep if c in per_model]]
    written.append(atomic_write_text(d / "effective_robustness.csv", csv_text(pm)))
    figures = []
    if fits:
        figures.append(save_figure(plot_overview(baselines, fits), d / "overview.png"))
    for shift, g in pm.groupby("shift", sort=False):
        written.append(atomic_write_text(d / f"{_slug(shift)}.csv", csv_text(g)))
        if _duplicate_variant(shift):
            continue  # ImageNetV2 as released / on 1 in 8 classes: in the tables; its figure would repeat ImageNetV2's
        fig, ax = plt.subplots(figsize=(8.8, 5.2))
        plot_shift(per_model, shift, fits.get(shift), ax=ax)
        fig.tight_layout()
        figures.append(save_figure(fig, d / f"{_slug(shift)}.png"))
    written += figures
    return written, landscape_section(baselines, per_model, figures, out)
