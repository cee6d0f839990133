"""The HTML review page for near-duplicate detection: :func:`review_pairs` picks the pairs a person should look
at (decided duplicates, borderline non-duplicates) and :func:`write_review` writes them side by side with
their distances into one self-contained HTML file. Moved out of
:mod:`generalization.sampler.near_duplicates` (which re-exports them) to keep modules short.
"""

from __future__ import annotations

import base64
import html
import io as _io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..files import atomic_write_text, save_figure

if TYPE_CHECKING:
    from .near_duplicates import ImageSet, NearDuplicateResult


def review_pairs(result: NearDuplicateResult, n: int = 24) -> dict[str, pd.DataFrame]:
    """Pairs worth a look, per section (each sorted by distance under the first selected metric):

    - ``candidate_links``: candidate–candidate duplicate links (the nearest ``n``);
    - ``farthest_linked``: the ``n`` linked candidate–original pairs with the largest distance;
    - ``closest_unlinked``: the ``n`` closest pairs (either pool) that are not links.
    """
    metrics = list(result.thresholds)
    m = metrics[0]
    nb = result.neighbors
    cc = (nb["pool"] == "candidate").to_numpy()
    ci, ni = nb["candidate_index"].to_numpy(), nb["neighbor_index"].to_numpy()
    # One row per pair (candidate pairs once, smaller index first), one distance column per metric.
    pairs = pd.DataFrame(
        {
            "pool": nb["pool"].to_numpy(),
            "_a": np.where(cc, np.minimum(ci, ni), ci),
            "_b": np.where(cc, np.maximum(ci, ni), ni),
            "metric": nb["metric"].to_numpy(),
            "distance": nb["distance"].to_numpy(),
        }
    )
    wide = pairs.pivot_table(index=["pool", "_a", "_b"], columns="metric", values="distance", aggfunc="min")
    wide = wide.reindex(columns=metrics).reset_index()
    wide.columns.name = None
    link_keys = set(
        zip(
            result.links["pool"], result.links["candidate_index"], result.links["neighbor_index"], strict=True
        )
    )
    wide["linked"] = [
        (p, a, b) in link_keys for p, a, b in zip(wide["pool"], wide["_a"], wide["_b"], strict=True)
    ]
    wide["distance"] = wide[m]
    wide = wide.sort_values(["distance", "pool", "_a", "_b"], kind="stable", na_position="last")
    sections = {
        "candidate_links": wide[wide["linked"] & (wide["pool"] == "candidate")].head(n),
        "farthest_linked": wide[wide["linked"] & (wide["pool"] == "original")].tail(n).iloc[::-1],
        "closest_unlinked": wide[~wide["linked"]].head(n),
    }
    return {k: v.assign(metric=m).reset_index(drop=True) for k, v in sections.items()}


def _dist_text(row, metrics: Sequence[str], sep: str) -> str:
    return sep.join(f"{x} = {row[x]:.4g}" for x in metrics if x in row and pd.notna(row[x]))


_SECTION_TITLES = {
    "candidate_links": "Candidate–candidate duplicate links (one survivor per group)",
    "farthest_linked": "Farthest linked candidate–original pairs (check for false alarms)",
    "closest_unlinked": "Closest pairs NOT linked (check for misses)",
}


def _png_b64(img: np.ndarray, scale: int) -> str:
    from PIL import Image

    im = Image.fromarray(img)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = _io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pair_images(row, candidates: ImageSet, originals: ImageSet) -> tuple[np.ndarray, np.ndarray, str, str]:
    a, b = int(row["_a"]), int(row["_b"])
    if row["pool"] == "candidate":
        return candidates.images[a], candidates.images[b], candidates.ids[a], candidates.ids[b]
    return candidates.images[a], originals.images[b], candidates.ids[a], originals.ids[b]


def write_review(
    result: NearDuplicateResult, candidates: ImageSet, originals: ImageSet, out_dir: str | Path, n: int = 24
) -> list[Path]:
    """Write ``review.html`` (self-contained, images inlined) and ``review.png`` (contact sheet)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    sections = review_pairs(result, n)
    scale = max(1, 96 // max(candidates.images.shape[1:3]))
    m = next(iter(result.thresholds))
    thr = result.thresholds[m]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Near-duplicate review</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px;font-size:13px}img{image-rendering:pixelated}.y{color:#b00}.n{color:#070}</style></head><body>",
        f"<h1>Near-duplicate review</h1><p>Candidates: {html.escape(candidates.source)} ({len(candidates)}); "
        f"originals: {html.escape(originals.source)} ({len(originals)}). Sorted by <b>{html.escape(m)}</b> "
        f"(threshold {_fmt(thr)}). Thresholds: {html.escape(str(result.thresholds))}; a pair is linked when it "
        "is under the threshold of any metric.</p>",
    ]
    for key, df in sections.items():
        parts.append(f"<h2>{html.escape(_SECTION_TITLES[key])} — {len(df)} pair(s)</h2>")
        if df.empty:
            parts.append("<p>none</p>")
            continue
        parts.append(
            "<table><tr><th>candidate</th><th>neighbour</th><th>ids</th><th>distance</th><th>link</th></tr>"
        )
        for _, row in df.iterrows():
            ia, ib, na, nb_ = _pair_images(row, candidates, originals)
            parts.append(
                f"<tr><td><img src='data:image/png;base64,{_png_b64(ia, scale)}'></td>"
                f"<td><img src='data:image/png;base64,{_png_b64(ib, scale)}'></td>"
                f"<td>{html.escape(na)}<br>{html.escape(row['pool'])}: {html.escape(nb_)}</td>"
                f"<td>{_dist_text(row, list(result.thresholds), '<br>')}</td>"
                f"<td class='{'y' if row['linked'] else 'n'}'>{'linked' if row['linked'] else 'not linked'}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    html_path = atomic_write_text(out_dir / "review.html", "".join(parts))

    # Contact sheet: one block per section, each pair as candidate | neighbour.
    cols = 6
    nonempty = {k: v for k, v in sections.items() if len(v)}
    rows_per = {k: math.ceil(len(v) / cols) for k, v in nonempty.items()}
    total_rows = max(1, sum(rows_per.values()))
    fig = plt.figure(figsize=(cols * 2.3, 0.5 + total_rows * 1.9 + 0.5 * len(nonempty)))
    if nonempty:
        subfigs = np.atleast_1d(
            fig.subfigures(len(nonempty), 1, height_ratios=[r * 1.9 + 0.5 for r in rows_per.values()])
        )
        for sf, (key, df) in zip(subfigs, nonempty.items(), strict=True):
            sf.suptitle(
                f"{_SECTION_TITLES[key]}: candidate | neighbour, {m} threshold {_fmt(thr)}",
                fontsize=10,
                x=0.01,
                ha="left",
            )
            axes = np.atleast_1d(sf.subplots(rows_per[key], cols)).ravel()
            for ax in axes:
                ax.axis("off")
            for ax, (_, row) in zip(axes, df.iterrows(), strict=False):
                ia, ib, na, nb_ = _pair_images(row, candidates, originals)
                gap = np.full((ia.shape[0], max(1, ia.shape[1] // 8), 3), 255, np.uint8)
                ax.imshow(np.concatenate([ia, gap, ib], 1), interpolation="nearest")
                ax.set_title(
                    f"{_short(na)}\n{row['pool']} {_short(nb_)}\n{_dist_text(row, list(result.thresholds), ', ')}",
                    fontsize=6.5,
                )
    else:
        fig.text(0.5, 0.5, "no pairs to review", ha="center")
    png_path = save_figure(fig, out_dir / "review.png", dpi=110)
    return [html_path, png_path]


def _fmt(t: float | None) -> str:
    return "none" if t is None else f"{t:g}"


def _short(s: str, n: int = 28) -> str:
    return s if len(s) <= n else "…" + s[-(n - 1) :]
