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

from ..test_sets import title_of
from .trends import TrendFit, paired_accuracies, to_scale

__all__ = ["SOURCE_STYLES", "plot_pair", "plot_pairs", "save_figure"]

#: marker style per source; unknown sources cycle through the spare styles
SOURCE_STYLES: dict[str, dict] = {
    "imagenetv2-release": {"color": "tab:blue", "marker": "o", "label": "ImageNetV2 release models"},
    "cifar10.1-release": {"color": "tab:blue", "marker": "o", "label": "CIFAR-10.1 release models"},
    "timm": {"color": "tab:orange", "marker": "s", "label": "timm (published)"},
    "testbed": {"color": "tab:green", "marker": "^", "label": "imagenet-testbed (published)"},
    "evaluate": {"color": "tab:purple", "marker": "D", "label": "evaluated here"},
}
_SPARE = [("tab:brown", "v"), ("tab:pink", "P"), ("tab:olive", "X"), ("tab:cyan", "h")]
_TICKS = {
    "probit": [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8],
    "logit": [1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5, 99.8],
}


def _style(source: str, others: list[str]) -> dict:
    if source in SOURCE_STYLES:
        return SOURCE_STYLES[source]
    color, marker = _SPARE[others.index(source) % len(_SPARE)] if source in others else _SPARE[0]
    return {"color": color, "marker": marker, "label": source}


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
):
    """Scatter new vs original top-1 for every source, with Clopper-Pearson bars on both axes.

    Models with only an original accuracy are drawn hollow at the trend's prediction, with the band as
    their vertical bar, and labelled "predicted" (``show_predicted="auto"``: only for sources with at most
    25 such models, so a big published table does not bury the plot). Flagged rows are grey crosses.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.6))
    pairs = paired_accuracies(table, original, new)
    if pairs.empty or pairs["new"].isna().all():
        from ..files import DataError

        raise DataError(f"no model has accuracies on both {original!r} and {new!r} in this table")
    sources = sorted(set(pairs["source"]))
    spare = [s for s in sources if s not in SOURCE_STYLES]
    t = lambda v: to_scale(v, scale)  # noqa: E731

    shown = pairs[pairs["new"].notna()]
    lo_lim = float(np.nanmin(np.r_[shown["orig_ci_low"], shown["new_ci_low"], pairs["orig_ci_low"]]))
    hi_lim = float(np.nanmax(np.r_[shown["orig_ci_high"], shown["new_ci_high"], pairs["orig_ci_high"]]))
    pad = 0.04 * (hi_lim - lo_lim)
    lo_lim, hi_lim = max(lo_lim - pad, 0.3 if scale != "linear" else 0.0), min(hi_lim + pad, 99.9 if scale != "linear" else 100.0)

    # y = x and the trend with its band
    diag = np.linspace(lo_lim, hi_lim, 100)
    ax.plot(t(diag), t(diag), ls="--", color="black", lw=1, label="y = x", zorder=1)
    if fit is not None:
        grid = fit.band_x[(fit.band_x >= lo_lim) & (fit.band_x <= hi_lim)]
        if len(grid) == 0:
            grid = fit.band_x
        blo, bhi = fit.band_at(grid)
        ax.fill_between(t(grid), t(blo), t(bhi), color="tab:red", alpha=0.18, lw=0,
                        label=f"{int(100 * fit.band_level)} % bootstrap band", zorder=2)  # fmt: skip
        ax.plot(t(grid), t(fit.predict(grid)), color="tab:red", lw=1.5, label=f"{scale} fit", zorder=3)

    for source in sources:
        st = _style(source, spare)
        g = pairs[pairs["source"] == source]
        ok = g[g["new"].notna() & (g["flag"] == "")]
        many = len(ok) > 80  # big published tables: lighter bars keep the trend readable
        if len(ok):
            ax.errorbar(
                t(ok["orig"]), t(ok["new"]),
                xerr=[t(ok["orig"]) - t(ok["orig_ci_low"]), t(ok["orig_ci_high"]) - t(ok["orig"])],
                yerr=[t(ok["new"]) - t(ok["new_ci_low"]), t(ok["new_ci_high"]) - t(ok["new"])],
                fmt=st["marker"], ms=3.5 if many else 4.5, color=st["color"], ecolor=st["color"],
                elinewidth=0.6, alpha=0.6 if many else 0.9, capsize=0, label=f"{st['label']} ({len(ok)})", zorder=4,
            )  # fmt: skip
        bad = g[g["new"].notna() & (g["flag"] != "")]
        if len(bad):
            inside = bad[bad["new"] >= lo_lim]
            ax.scatter(t(inside["orig"]), t(inside["new"]), marker="x", color="grey", s=30, zorder=4,
                       label=f"flagged, not fitted ({len(bad)})")  # fmt: skip
        pred = g[g["new"].isna()].sort_values("orig")
        wanted = show_predicted is True or (show_predicted == "auto" and len(pred) <= 25)
        if wanted and fit is not None and len(pred):
            x = pred["orig"].to_numpy()
            y = fit.predict(x)
            blo, bhi = fit.band_at(x)
            ax.errorbar(t(x), t(y), yerr=[t(y) - t(blo), t(bhi) - t(y)],
                        xerr=[t(x) - t(pred["orig_ci_low"]), t(pred["orig_ci_high"]) - t(x)], fmt=st["marker"],
                        mfc="white", mec=st["color"], ecolor=st["color"], ms=6, elinewidth=1, capsize=2,
                        label=f"{st['label']}: predicted ({len(pred)})", zorder=5)  # fmt: skip
            if len(pred) <= 8:  # name them, in a column below and right of the points so labels don't collide
                for i, (x_, y_, name) in enumerate(zip(x, y, pred["model"], strict=True)):
                    ax.annotate(name, (t(x_), t(y_)), xytext=(14, -14 - 11 * (len(pred) - 1 - i)),
                                textcoords="offset points", fontsize=7, color=st["color"],
                                arrowprops={"arrowstyle": "-", "color": st["color"], "lw": 0.5})  # fmt: skip

    ax.set_xlim(t(lo_lim), t(hi_lim))
    ax.set_ylim(t(lo_lim), t(hi_lim))
    _percent_ticks(ax, scale, lo_lim, hi_lim)
    o, n = title_of(original), title_of(new)
    suffix = "" if scale == "linear" else f", {scale} scale"
    ax.set_xlabel(f"{o} top-1 accuracy (%{suffix})")
    ax.set_ylabel(f"{n} top-1 accuracy (%{suffix})")
    ax.set_title(f"{n} vs {o}", fontsize=10)
    ax.grid(True, color="0.9", lw=0.6)
    ax.set_aspect("equal", adjustable="box")
    if legend:
        ax.legend(loc="upper left", fontsize=7, frameon=True, framealpha=0.9)
    return ax


def plot_pairs(
    table: pd.DataFrame,
    pairs: list[tuple[str, str]],
    fits: dict[tuple[str, str, str], TrendFit],
    *,
    scale: str = "linear",
    suptitle: str | None = None,
):
    """One panel per (original, new) pair, side by side."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.0 * len(pairs), 5.0), squeeze=False)
    for ax, (original, new) in zip(axes[0], pairs, strict=True):
        plot_pair(table, original, new, fits.get((original, new, scale)), scale=scale, ax=ax)
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a PNG with no timestamp in its metadata (reruns give identical files), atomically."""
    import io as _io

    from ..files import atomic_write_bytes

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


