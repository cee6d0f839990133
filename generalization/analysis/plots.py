"""Figures in the paper's style: new vs original accuracy with exact error bars, y = x, and the trend.

On probit and logit scales the points are drawn in the transformed coordinates, and the ticks are
labelled in percent, so the axes read as accuracies.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import files
from ..sources import get_source
from ..test_sets import get_info, title_of
from .trends import TrendFit, paired_accuracies, to_scale

__all__ = ["plot_pair", "plot_pairs", "save_figure"]

_TICKS = {
    "probit": [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8],
    "logit": [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8],
}


def _percent_ticks(ax, scale: str, lo: float, hi: float) -> None:
    """Label a transformed axis in percent, choosing ticks inside the drawn range."""
    if scale == "linear":
        return
    ticks = []
    min_gap = (to_scale(hi, scale) - to_scale(lo, scale)) / 14  # keep labels from overlapping
    for t in _TICKS[scale]:
        if lo <= t <= hi and (not ticks or to_scale(t, scale) - to_scale(ticks[-1], scale) >= min_gap):
            ticks.append(t)
    if len(ticks) < 3:
        ticks = list(np.round(np.linspace(lo, hi, 5), 1))
    pos = to_scale(ticks, scale)
    fmt = [f"{t:g}" for t in ticks]
    ax.set_xticks(pos, fmt)
    ax.set_yticks(pos, fmt)


def _limits(frames: list[pd.DataFrame], scale: str) -> tuple[float, float, float, float]:
    """Axis limits (percent) that hold every interval of the given rows, padded a little."""
    xs = np.concatenate([np.r_[f["orig_ci_low"], f["orig_ci_high"]] for f in frames])
    ys = np.concatenate([np.r_[f["new_ci_low"], f["new_ci_high"]] for f in frames if "new_ci_low" in f])
    out = []
    for v in (xs, ys):
        v = v[np.isfinite(v)]
        lo, hi = float(v.min()), float(v.max())
        pad = 0.04 * (hi - lo) + 0.5
        out += [max(lo - pad, 0.3 if scale != "linear" else 0.0), min(hi + pad, 99.9 if scale != "linear" else 100.0)]
    return out[0], out[1], out[2], out[3]


def plot_pair(
    table: pd.DataFrame,
    original: str,
    new: str,
    fit: TrendFit | None = None,
    *,
    scale: str = "linear",
    ax=None,
    show_predicted: bool | str = "auto",
    legend: bool = True,
    limits: str = "all",
    title: str | None = None,
):
    """Scatter new vs original top-1 for every source, with Clopper-Pearson bars on both axes.

    The fit's models (its model set) are drawn in their source's style; models of the same sources that the
    set leaves out (e.g. the Fisher-vector models in the ``paper`` set) as a distinct hollow grey group,
    "not fitted"; flagged rows as grey crosses. Models with only an original accuracy are drawn hollow at the
    trend's prediction with its 95 % prediction interval as their vertical bar, labelled "predicted"
    (``show_predicted="auto"``: only for sources with at most 25 such models, so a big published table does
    not bury the plot). ``limits="fitted"`` frames the fitted models only (the paper's Figure 1); points
    outside are then shown in an inset, never dropped silently.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.6))
    pairs = paired_accuracies(table, original, new)
    if pairs.empty or pairs["new"].isna().all():
        from ..files import DataError

        raise DataError(f"no model has accuracies on both {original!r} and {new!r} in this table")
    sources = sorted(set(pairs["source"]))
    t = lambda v: to_scale(v, scale)  # noqa: E731

    members = set(fit.members) if fit is not None else set()
    key = list(zip(pairs["source"], pairs["model"], strict=True))
    pairs["member"] = [k in members for k in key]
    member_sources = {s for s, _ in members}
    has_new = pairs["new"].notna()
    unflagged = pairs["flag"] == ""
    # left out of the set although their source is in it: drawn, distinctly, as not fitted
    pairs["left_out"] = has_new & unflagged & ~pairs["member"] & pairs["source"].isin(member_sources)

    if limits == "fitted" and members:
        xlo, xhi, ylo, yhi = _limits([pairs[pairs["member"]]], scale)
    else:
        shown = pairs[has_new]
        xlo, xhi, ylo, yhi = _limits([shown, pairs[["orig_ci_low", "orig_ci_high"]]], scale)
        if limits != "fitted":  # the per-scale figures: one square frame
            xlo = ylo = min(xlo, ylo)
            xhi = yhi = max(xhi, yhi)
    outside = pairs[has_new & ((pairs["orig"] < xlo) | (pairs["orig"] > xhi) | (pairs["new"] < ylo) | (pairs["new"] > yhi))]

    # y = x and the trend with its band
    diag = np.linspace(min(xlo, ylo), max(xhi, yhi), 100)
    ax.plot(t(diag), t(diag), ls="--", color="black", lw=1, label="y = x", zorder=1)
    if fit is not None:
        grid = np.linspace(max(xlo, fit.band_x.min()), min(xhi, fit.band_x.max()), 80)
        blo, bhi = fit.band_at(grid)
        ax.fill_between(t(grid), t(blo), t(bhi), color="tab:red", alpha=0.18, lw=0,
                        label=f"{int(100 * fit.band_level)} % bootstrap band of the fit", zorder=2)  # fmt: skip
        ax.plot(t(grid), t(fit.predict(grid)), color="tab:red", lw=1.5,
                label=f"{scale} fit ({fit.model_set} set, {fit.n_models} models)", zorder=3)  # fmt: skip

    for source in sources:
        st = get_source(source, sources)
        g = pairs[pairs["source"] == source]
        ok = g[g["new"].notna() & (g["flag"] == "") & ~g["left_out"]]
        many = len(ok) > 80  # big published tables: lighter bars keep the trend readable
        if len(ok):
            ax.errorbar(
                t(ok["orig"]), t(ok["new"]),
                xerr=[t(ok["orig"]) - t(ok["orig_ci_low"]), t(ok["orig_ci_high"]) - t(ok["orig"])],
                yerr=[t(ok["new"]) - t(ok["new_ci_low"]), t(ok["new_ci_high"]) - t(ok["new"])],
                fmt=st.marker, ms=3.5 if many else 4.5, color=st.color, ecolor=st.color,
                elinewidth=0.6, alpha=0.6 if many else 0.9, capsize=0, label=f"{st.label} ({len(ok)})", zorder=4,
            )  # fmt: skip
        out_set = g[g["left_out"]]
        if len(out_set):
            names = ", ".join(out_set["model"]) if len(out_set) <= 4 else f"{len(out_set)} models"
            in_frame = out_set["orig"].between(xlo, xhi) & out_set["new"].between(ylo, yhi)
            where = "" if in_frame.any() else " (in the inset)"
            ax.errorbar(
                t(out_set["orig"]), t(out_set["new"]),
                xerr=[t(out_set["orig"]) - t(out_set["orig_ci_low"]), t(out_set["orig_ci_high"]) - t(out_set["orig"])],
                yerr=[t(out_set["new"]) - t(out_set["new_ci_low"]), t(out_set["new_ci_high"]) - t(out_set["new"])],
                fmt=st.marker, ms=5, mfc="white", mec="0.45", ecolor="0.6", elinewidth=0.6, capsize=0,
                label=f"not in the fitted set{where}: {names}", zorder=4,
            )  # fmt: skip
        bad = g[g["new"].notna() & (g["flag"] != "")]
        if len(bad):
            ax.scatter(t(bad["orig"]), t(bad["new"]), marker="x", color="grey", s=30, zorder=4,
                       label=f"flagged, not fitted ({len(bad)})")  # fmt: skip
        pred = g[g["new"].isna()].sort_values("orig")
        wanted = show_predicted is True or (show_predicted == "auto" and len(pred) <= 25)
        if wanted and fit is not None and len(pred):
            x = pred["orig"].to_numpy()
            y, plo, phi = fit.prediction_interval(x, get_info(new).num_images)
            ax.errorbar(t(x), t(y), yerr=[t(y) - t(plo), t(phi) - t(y)],
                        xerr=[t(x) - t(pred["orig_ci_low"]), t(pred["orig_ci_high"]) - t(x)], fmt=st.marker,
                        mfc="white", mec=st.color, ecolor=st.color, ms=6, elinewidth=1, capsize=2,
                        label=f"{st.label}: predicted, 95 % prediction interval ({len(pred)})", zorder=5)  # fmt: skip
            if len(pred) <= 8:  # name them, in a column below and right of the points so labels don't collide
                for i, (x_, y_, name) in enumerate(zip(x, y, pred["model"], strict=True)):
                    ax.annotate(name, (t(x_), t(y_)), xytext=(14, -14 - 11 * (len(pred) - 1 - i)),
                                textcoords="offset points", fontsize=7, color=st.color,
                                arrowprops={"arrowstyle": "-", "color": st.color, "lw": 0.5})  # fmt: skip

    ax.set_xlim(t(xlo), t(xhi))
    ax.set_ylim(t(ylo), t(yhi))
    _percent_ticks(ax, scale, min(xlo, ylo), max(xhi, yhi))
    o, n = title_of(original), title_of(new)
    suffix = "" if scale == "linear" else f", {scale} scale"
    ax.set_xlabel(f"{o} top-1 accuracy (%{suffix})")
    ax.set_ylabel(f"{n} top-1 accuracy (%{suffix})")
    ax.set_title(title or f"{n} vs {o}", fontsize=10)
    ax.grid(True, color="0.9", lw=0.6)
    if xlo == ylo and xhi == yhi:
        ax.set_aspect("equal", adjustable="box")
    if legend:
        ax.legend(loc="upper left", fontsize=7, frameon=True, framealpha=0.9)
    if limits == "fitted" and len(outside):
        _inset_all(ax, pairs, fit, scale, (xlo, xhi, ylo, yhi))
    return ax


def _inset_all(ax, pairs: pd.DataFrame, fit: TrendFit | None, scale: str, frame) -> None:
    """A small full-range view in the lower right: every point, the main panel's frame as a rectangle."""
    t = lambda v: to_scale(v, scale)  # noqa: E731
    ins = ax.inset_axes([0.62, 0.06, 0.35, 0.35])
    shown = pairs[pairs["new"].notna()]
    lo = 0.3 if scale != "linear" else 0.0
    hi = 99.9 if scale != "linear" else 100.0
    ins.plot([t(lo), t(hi)], [t(lo), t(hi)], ls="--", color="black", lw=0.6)
    if fit is not None:
        g = np.linspace(max(lo, 1.0), min(hi, 99.0), 100)
        ins.plot(t(g), t(fit.predict(g)), color="tab:red", lw=0.8)
    inside = shown[shown["member"] | ((shown["flag"] == "") & ~shown["left_out"])]
    ins.scatter(t(inside["orig"]), t(inside["new"]), s=4, color="tab:blue")
    rest = shown[shown["left_out"]]
    ins.scatter(t(rest["orig"]), t(rest["new"]), s=9, facecolors="white", edgecolors="0.4", lw=0.7)
    bad = shown[shown["flag"] != ""]
    ins.scatter(t(bad["orig"]), t(bad["new"]), s=9, marker="x", color="grey", lw=0.7)
    xlo, xhi, ylo, yhi = frame
    ins.add_patch(plt.Rectangle((t(xlo), t(ylo)), t(xhi) - t(xlo), t(yhi) - t(ylo), fill=False, ec="0.3", lw=0.6))
    ins.set_xlim(t(lo), t(hi))
    ins.set_ylim(t(lo), t(hi))
    ins.tick_params(labelsize=6)
    ins.set_title("all models, 0-100 %", fontsize=6, pad=2)


def plot_pairs(
    table: pd.DataFrame,
    pairs: list[tuple[str, str]],
    fits: dict[tuple[str, str, str], TrendFit],
    *,
    scale: str = "linear",
    suptitle: str | None = None,
    limits: str = "all",
    titles: list[str] | None = None,
):
    """One panel per (original, new) pair, side by side (``limits`` and titles as in :func:`plot_pair`)."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.0 * len(pairs), 5.0), squeeze=False)
    for k, (ax, (original, new)) in enumerate(zip(axes[0], pairs, strict=True)):
        plot_pair(table, original, new, fits.get((original, new, scale)), scale=scale, ax=ax, limits=limits,
                  title=titles[k] if titles else None)  # fmt: skip
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a PNG at 150 dpi with no version in its metadata (reruns give identical files), atomically."""
    return files.save_figure(fig, path, dpi=150)


