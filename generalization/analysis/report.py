"""Results folder: accuracy and fit tables, per-model tables, figures and REPORT.md.

``write_results`` turns an accuracy table into the results folder; ``reproduce`` imports the releases
first (or, given none, rebuilds from the folder's own ``accuracies.csv``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import DataError, atomic_write_text
from ..metrics import ACCURACY_COLUMNS
from ..store import importers
from ..store.records import PredictionStore
from ..test_sets import TEST_SETS
from . import landscape, plots
from . import trends as analysis

__all__ = ["write_results", "reproduce", "FIGURE1_PAIRS"]

#: the paper's Figure 1: CIFAR-10.1 (v6) and ImageNetV2 MatchedFrequency, linear fits
FIGURE1_PAIRS = [("cifar10-test", "cifar10.1-v6"), ("imagenet-val", "imagenetv2-matched-frequency")]


def _csv(df: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, df.to_csv(index=False, float_format="%.10g", lineterminator="\n"))


def _md_table(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(v, floatfmt)
        return "" if v is pd.NA or v is None else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_results(
    table: pd.DataFrame,
    out: str | os.PathLike,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[Path]:
    """Write ``accuracies.csv``, ``fits.csv``, ``per_model.csv/.md``, ``rank_agreement.csv``, figures
    and ``REPORT.md`` for every pair of test sets in ``table``. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if table.empty:
        raise DataError("no accuracy rows to analyze (is the store empty?)")
    written = []
    acc = table.copy()
    if "flag" not in acc:
        acc["flag"] = ""
    acc_cols = ACCURACY_COLUMNS + ["flag"]
    written.append(_csv(acc[acc_cols], out / "accuracies.csv"))

    fits_df, fits = analysis.fit_trends(acc, n_bootstrap=n_bootstrap, level=level, seed=seed)
    written.append(_csv(fits_df, out / "fits.csv"))
    per_model = analysis.residuals(acc, fits, scale="linear")
    written.append(_csv(per_model, out / "per_model.csv"))
    ranks = analysis.rank_agreement(acc)
    written.append(_csv(ranks, out / "rank_agreement.csv"))

    md = ["# Per-model accuracies (top-1, %), gap and position relative to the linear trend\n"]
    md.append("Intervals are 95 % Clopper-Pearson (accuracies) and Newcombe (gap). "
              "`vs trend` = new - linear-trend prediction (effective robustness).\n")  # fmt: skip
    for (o, n), g in per_model.groupby(["original_test_set", "new_test_set"], sort=False):
        g = g[g["new"].notna()]
        md.append(f"\n## {TEST_SETS[n].title} vs {TEST_SETS[o].title}\n\n")
        view = pd.DataFrame({
            "source": g["source"], "model": g["model"],
            "original": g["orig"], "original 95% CI": [f"{a:.2f}-{b:.2f}" for a, b in zip(g["orig_ci_low"], g["orig_ci_high"], strict=True)],
            "new": g["new"], "new 95% CI": [f"{a:.2f}-{b:.2f}" for a, b in zip(g["new_ci_low"], g["new_ci_high"], strict=True)],
            "gap": g["gap"], "gap 95% CI": [f"{a:.2f}-{b:.2f}" for a, b in zip(g["gap_ci_low"], g["gap_ci_high"], strict=True)],
            "vs trend": g["effective_robustness"], "flag": g["flag"],
        })  # fmt: skip
        md.append(_md_table(view))
    written.append(atomic_write_text(out / "per_model.md", "".join(md)))

    pairs = analysis.test_set_pairs(acc)
    by_original: dict[str, list[tuple[str, str]]] = {}
    for o, n in pairs:
        by_original.setdefault(o, []).append((o, n))
    figures = []
    fig1 = [p for p in FIGURE1_PAIRS if p in pairs]
    if fig1:
        ref = acc[acc["source"].isin(analysis.REFERENCE_SOURCES.values())]
        fig = plots.plot_pairs(ref if not ref.empty else acc, fig1, fits, scale="linear")
        figures.append(plots.save_figure(fig, out / "figure1.png"))
    for o, ps in by_original.items():
        stem = "imagenet" if o == "imagenet-val" else o.split("-")[0]
        for scale in analysis.SCALES:
            fig = plots.plot_pairs(acc, ps, fits, scale=scale)
            figures.append(plots.save_figure(fig, out / f"{stem}_{scale}.png"))
    written += figures

    land_paths, land_md = landscape.write_landscape(acc, out, n_bootstrap=n_bootstrap, seed=seed, level=level)
    written += land_paths
    written.append(atomic_write_text(out / "REPORT.md", _report(acc, fits_df, per_model, ranks, figures, out) + land_md))
    return written


def _report(acc, fits_df, per_model, ranks, figures, out: Path) -> str:
    lines = ["# Do classifiers generalize to new test sets? — reproduction report\n"]
    sources = ", ".join(f"`{s}` ({k} rows)" for s, k in acc.groupby("source").size().items())
    lines.append(f"Accuracy rows: {len(acc)} from {sources}. Intervals: 95 % Clopper-Pearson; gap intervals: "
                 "Newcombe's score interval for two independent proportions. Trends are fitted on the paper's "
                 "release models (flagged rows left out); other sources are drawn against them.\n")  # fmt: skip
    flagged = acc[acc["flag"].fillna("") != ""]
    if len(flagged):
        lines.append("\n**Flagged rows** (kept in the tables, left out of fits and rank correlations):\n")
        for r in flagged.itertuples():
            lines.append(f"- `{r.model}` on `{r.test_set}` ({r.source}): {r.flag}")
        lines.append("")
    lines.append("\n## Accuracy drop per test set (original - new, top-1 percentage points)\n")
    rows = []
    for (o, n, s), g in per_model.groupby(["original_test_set", "new_test_set", "source"], sort=False):
        g = g[g["new"].notna() & (g["flag"] == "")]
        if g.empty:
            continue
        best, worst = g.loc[g["gap"].idxmin()], g.loc[g["gap"].idxmax()]
        rows.append({"original": o, "new": n, "source": s, "models": len(g),
                     "gap min": g["gap"].min(), "gap median": g["gap"].median(), "gap max": g["gap"].max(),
                     "smallest gap": f"{best['model']} ({best['gap']:.2f})",
                     "largest gap": f"{worst['model']} ({worst['gap']:.2f})"})  # fmt: skip
    lines.append(_md_table(pd.DataFrame(rows)))
    lines.append("\n## Trend fits (new on original top-1)\n")
    lines.append("Linear: percent on both axes. Probit/logit: slope and intercept on the transformed scale. "
                 "Slope interval: percentile bootstrap over models.\n")  # fmt: skip
    if not fits_df.empty:
        f = fits_df[["original", "new", "scale", "n_models", "slope", "slope_ci_low", "slope_ci_high", "intercept", "r"]]
        lines.append(_md_table(f, ".3f"))
    lines.append("\n## Rank agreement between original and new accuracy\n")
    if not ranks.empty:
        lines.append(_md_table(ranks[["original", "new", "source", "n_models", "spearman_rho", "kendall_tau"]], ".3f"))
    lines.append("\n## Models furthest above and below the linear trend (effective robustness, points)\n")
    ok = per_model[per_model["effective_robustness"].notna() & (per_model["flag"] == "")]
    ext = []
    for (_o, n), g in ok.groupby(["original_test_set", "new_test_set"], sort=False):
        hi, lo = g.loc[g["effective_robustness"].idxmax()], g.loc[g["effective_robustness"].idxmin()]
        ext.append({"new": n, "most above": f"{hi['model']} ({hi['source']}, {hi['effective_robustness']:+.2f})",
                    "most below": f"{lo['model']} ({lo['source']}, {lo['effective_robustness']:+.2f})"})  # fmt: skip
    if ext:
        lines.append(_md_table(pd.DataFrame(ext)))
    pred = per_model[per_model["new"].isna()]
    if len(pred):
        lines.append(f"\n{len(pred)} model/test-set pairs have only an original accuracy; the figures place "
                     "them at the trend's prediction (hollow markers, labelled predicted). See per_model.csv.\n")  # fmt: skip
    lines.append("\n## Figures\n")
    lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figures]
    lines.append("")
    return "\n".join(lines) + "\n"


def reproduce(
    *,
    out: str | os.PathLike = "results",
    imagenetv2_release: str | os.PathLike | None = None,
    cifar101_release: str | os.PathLike | None = None,
    cifar10_labels: str | os.PathLike | None = None,
    cifar10_root: str | os.PathLike | None = None,
    timm_results: list[str | os.PathLike] | None = None,
    testbed_results: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """Import whatever releases/tables are given into a store, then :func:`write_results` into ``out``.

    With no source given, rebuild the figures, fits and REPORT.md from ``out/accuracies.csv`` (what the
    project commits in ``results/``), offline.
    """
    out = Path(out)
    given = [imagenetv2_release, cifar101_release, timm_results, testbed_results]
    if not any(v is not None for v in given):
        acc_path = out / "accuracies.csv"
        if not acc_path.exists():
            raise DataError(f"{acc_path}: no release given and no accuracies.csv to rebuild from "
                            "(pass --imagenetv2-release / --cifar101-release, see README)")  # fmt: skip
        return write_results(analysis.read_accuracies(acc_path), out, n_bootstrap=n_bootstrap, seed=seed)

    with tempfile.TemporaryDirectory(prefix="generalization-store-") as tmp:
        st = PredictionStore(store if store is not None else tmp)
        if imagenetv2_release is not None:
            print(importers.import_imagenetv2(imagenetv2_release, st).summary())
        if cifar101_release is not None:
            if cifar10_labels is None and cifar10_root is None:
                raise DataError("the CIFAR-10.1 release needs the CIFAR-10 test labels: --cifar10-labels or --cifar10-root")
            if cifar10_labels is not None and cifar10_root is not None:
                cifar10_root = None  # an explicit labels file wins
            print(importers.import_cifar101(cifar101_release, st, cifar10_labels=cifar10_labels,
                                            cifar10_root=cifar10_root).summary())  # fmt: skip
        if timm_results:
            print(importers.import_timm_tables(list(timm_results), st).summary())  # every file, or a DataError
        if testbed_results is not None:
            print(importers.import_testbed(testbed_results, st).summary())
        return write_results(st.accuracy_table(), out, n_bootstrap=n_bootstrap, seed=seed)
