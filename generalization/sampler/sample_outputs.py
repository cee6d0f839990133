"""A sampling strategy's result and its files: :class:`SampleResult` (selected and excluded images, shortfalls,
manifest), the selection-frequency bins it is audited with (:data:`HISTOGRAM_BINS`, :func:`histogram_bins`, from
the ground floor's :mod:`generalization.selection_frequency`),
and :func:`write_outputs` / :func:`plot_audit`, which write the manifest, exclusion and shortfall tables and
the audit figure. Moved out of :mod:`generalization.sampler.strategies` (which re-exports these names and
holds the strategies themselves) to keep modules short.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import DataError, atomic_write_json, atomic_write_text, csv_text, save_figure
from ..selection_frequency import HISTOGRAM_BINS, histogram_bins  # re-exported: the sampler's bins

# in the order a reason is attributed when several apply (the original pipeline's order)
EXCLUSION_REASONS = (
    "blacklisted",
    "too_few_annotations",
    "below_threshold",
    "near_duplicate",
    "not_reviewed",
)


def largest_remainder(counts: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
    """Scale a histogram of counts to ``size`` items by the largest-remainder method.

    Each bin gets ``floor(count * size / total)``; the items left over go to the bins with the largest
    remainders, ties to the higher bin. Exact integer arithmetic (no float rounding).
    """
    c = np.asarray(counts, dtype=np.int64)
    total = int(c.sum())
    if total <= 0:
        raise DataError("cannot scale an empty histogram")
    q, r = np.divmod(c * int(size), total)
    left = int(size) - int(q.sum())
    order = sorted(range(len(c)), key=lambda b: (-int(r[b]), -b))
    for b in order[:left]:
        q[b] += 1
    return q


def _native(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


@dataclass
class SampleResult:
    """What a sampling run produced. ``selected`` has ``image_id``, ``class``, ``selection_frequency``,
    ``bin``, ``carried`` and ``upward`` (drawn from a higher bin); ``shortfalls`` one row per (class,
    bin) that missed its target (``bin`` = -1 for strategies without bins)."""

    manifest: dict
    selected: pd.DataFrame
    exclusions: pd.DataFrame
    shortfalls: pd.DataFrame
    targets: pd.DataFrame | None = None  # class x bin target counts (MatchedFrequency)
    eligible: pd.DataFrame | None = None  # the usable candidates (for the audit figure)
    edges: tuple = HISTOGRAM_BINS
    extra: dict = field(default_factory=dict)

    @property
    def is_valid(self) -> bool:
        return bool(self.manifest["is_valid"])

    def exclusion_summary(self) -> pd.DataFrame:
        """Per class, how many candidates each reason excluded (columns in :data:`EXCLUSION_REASONS`
        order, then any other reason)."""
        e = self.exclusions
        others = sorted(set(e["reason"]) - set(EXCLUSION_REASONS))
        cols = list(EXCLUSION_REASONS) + others
        if len(e) == 0:
            return pd.DataFrame(columns=["class", *cols])
        t = pd.crosstab(e["class"], e["reason"]).reindex(columns=cols, fill_value=0)
        t = t.sort_index().reset_index()
        t.columns.name = None
        return t


def write_outputs(result: SampleResult, out_dir: str | os.PathLike, *, figure: bool = True) -> list[Path]:
    """Write ``manifest.json``, ``exclusions.csv``, ``excluded_images.csv``, ``shortfalls.csv`` and
    (with ``figure``; not for KeywordCounts) ``audit.png`` into ``out_dir``. Returns the paths."""
    out = Path(out_dir)
    # the manifest is written without timestamps or user names, so reruns are byte-identical
    written = [atomic_write_json(out / "manifest.json", result.manifest)]
    if result.manifest["sampling_function"] != "keyword_counts":
        written.append(
            atomic_write_text(
                out / "exclusions.csv", csv_text(result.exclusion_summary())
            )
        )
    written.append(
        atomic_write_text(
            out / "excluded_images.csv", csv_text(result.exclusions)
        )
    )
    written.append(
        atomic_write_text(out / "shortfalls.csv", csv_text(result.shortfalls))
    )
    if figure and result.manifest["sampling_function"] != "keyword_counts":
        written.append(plot_audit(result, out / "audit.png"))
    return written


def _hist(result: SampleResult, df: pd.DataFrame, nb: int) -> pd.DataFrame:
    if len(df) == 0:
        return pd.DataFrame(columns=range(nb), dtype=np.int64)
    b = histogram_bins(df["selection_frequency"].to_numpy(), result.edges)
    return pd.crosstab(df["class"].to_numpy(), b).reindex(columns=range(nb), fill_value=0)


def plot_audit(result: SampleResult, path: str | os.PathLike, *, max_classes: int = 12) -> Path:
    """Target vs achieved selection-frequency histograms: all classes pooled (left) and the classes that
    missed their target most (small multiples; the first classes when none missed).

    For MatchedFrequency the target is the target histogram; for Threshold and TopImages, which have no
    histogram target, the reference is the histogram of the usable candidates scaled to the per-class size.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = list(result.edges)
    nb = len(edges) + 1
    labels = (
        [f"<{edges[0]:g}"] + [f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(nb - 2)] + [f"≥{edges[-1]:g}"]
    )
    achieved = _hist(result, result.selected, nb)
    if result.targets is not None:
        target, ref_label = result.targets, "target"
    else:
        pool = _hist(result, result.eligible, nb)
        k = result.selected.groupby("class").size()
        per = result.manifest.get("num_per_class")
        rows = {}
        for cls, h in pool.iterrows():
            size = per if isinstance(per, int) else int(k.get(cls, 0))
            rows[cls] = largest_remainder(h.to_numpy(), size) if h.sum() else np.zeros(nb, dtype=np.int64)
        target = pd.DataFrame.from_dict(rows, orient="index", columns=range(nb))
        ref_label = "usable candidates (scaled)"
    classes = sorted(set(target.index) | set(achieved.index), key=lambda x: (isinstance(x, str), x))
    target = target.reindex(index=classes, fill_value=0)
    achieved = achieved.reindex(index=classes, fill_value=0)
    dev = (target - achieved).abs().sum(axis=1)
    missing = (
        result.shortfalls.groupby("class")["missing"].sum()
        if len(result.shortfalls)
        else pd.Series(dtype=np.int64)
    )
    miss = {c: int(missing.get(c, 0)) for c in classes}
    order = sorted(classes, key=lambda c: (-miss[c], -int(dev[c]), (isinstance(c, str), c)))
    shown = order[:max_classes]
    ncols = 4
    nrows = max(1, int(np.ceil(len(shown) / ncols)))
    fig = plt.figure(figsize=(4 + 2.6 * ncols, max(3.6, 2.2 * nrows)))
    gs = fig.add_gridspec(nrows, ncols + 2)
    ax = fig.add_subplot(gs[:, :2])
    x = np.arange(nb)
    w = 0.4
    ax.bar(x - w / 2, target.sum().to_numpy(), w, label=ref_label, color="#9ecae1", edgecolor="#3182bd")
    ax.bar(x + w / 2, achieved.sum().to_numpy(), w, label="achieved", color="#fdae6b", edgecolor="#e6550d")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel("selection frequency")
    ax.set_ylabel("images (count)")
    name = result.manifest["sampling_function"]
    n_short = sum(1 for c in classes if miss[c] > 0)
    off = f", {int(dev.gt(0).sum())} histograms off target" if result.targets is not None else ""
    ax.set_title(
        f"{name}: all {len(classes)} classes\n{int(achieved.to_numpy().sum())} of "
        f"{int(result.manifest['target_size'])} images, {n_short} classes short{off}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    for i, cls in enumerate(shown):
        a = fig.add_subplot(gs[i // ncols, 2 + i % ncols])
        a.bar(x - w / 2, target.loc[cls].to_numpy(), w, color="#9ecae1", edgecolor="#3182bd")
        a.bar(x + w / 2, achieved.loc[cls].to_numpy(), w, color="#fdae6b", edgecolor="#e6550d")
        a.set_xticks(x, [lb.replace("–", "–\n") for lb in labels], fontsize=6)
        a.tick_params(axis="y", labelsize=7)
        a.set_title(f"{str(cls)[:24]} (short {miss[cls]}, off {int(dev[cls])})", fontsize=8)
        if i % ncols == 0:
            a.set_ylabel("images", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def dumps_manifest(manifest: dict) -> str:
    """The manifest as written (sorted keys, 2-space indent), for comparisons."""
    return json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
