"""Results folder: accuracy and fit tables, per-model tables, figures and REPORT.md.

``write_results`` turns an accuracy table into the results folder; ``reproduce`` imports the releases
first (or, given none, rebuilds from the folder's own ``accuracies.csv``).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import DataError, atomic_write_text, csv_text
from ..metrics import ACCURACY_COLUMNS
from ..sources import IMAGENETV2_RELEASE
from ..store import importers
from ..store.records import PredictionStore
from ..test_sets import original_of, title_of
from . import explorer, landscape, plots
from . import trends as analysis

__all__ = ["write_results", "reproduce", "FIGURE1_PAIRS", "PAPER", "PAPER_BOOTSTRAP"]

#: the paper's Figure 1: CIFAR-10.1 and ImageNetV2 MatchedFrequency, linear fits. The paper's CIFAR-10.1
#: numbers are version 4 (e.g. resnet_basic_110: 93.5 -> 85.2), so Figure 1 pairs CIFAR-10 with v4.
FIGURE1_PAIRS = [("cifar10-test", "cifar10.1-v4"), ("imagenet-val", "imagenetv2-matched-frequency")]
FIGURE1_TITLES = {"cifar10-test": "CIFAR-10", "imagenet-val": "ImageNet"}

#: bootstrap resamples for reproduce / analyze, as many as the paper used for its intervals
PAPER_BOOTSTRAP = 100_000
#: bootstrap resamples of the landscape's baseline bands (figures; see write_landscape)
LANDSCAPE_BOOTSTRAP = 2_000

#: numbers the paper (Recht et al., ICML 2019) prints; nothing here is computed by this project
PAPER = {
    "drop_cifar": (3.0, 15.0),  # "accuracy drops of 3% - 15% on CIFAR-10"
    "drop_imagenet": (11.0, 14.0),  # "... and 11% - 14% on ImageNet"
    "imagenet_slope": 1.1,
    "imagenet_slope_ci": (1.07, 1.19),
    "imagenet_intercept_ci": (-26.0, -17.8),
    "imagenet_bootstrap": 100_000,
    "cifar_slope": 1.7,
    "cifar_slope_ci": (1.63, 1.76),
    # mean change (points) from ImageNet to each new set over the release's 67 models: (top-1, top-5)
    "mean_change": {
        "imagenetv2-matched-frequency": (-11.8, -8.2),
        "imagenetv2-threshold0.7": (-3.2, -1.2),
        "imagenetv2-top-images": (2.1, 1.8),
    },
}


def _csv(df: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, csv_text(df, float_format="%.10g"))


def _md_table(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(v, floatfmt)
        return "" if v is pd.NA or v is None else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _text_column(df: pd.DataFrame, col: str) -> None:
    df[col] = ["" if pd.isna(v) else str(v) for v in df[col]] if col in df else ""


def write_results(
    table: pd.DataFrame,
    out: str | os.PathLike,
    *,
    n_bootstrap: int = PAPER_BOOTSTRAP,
    seed: int = 0,
    level: float = 0.95,
    model_set: str | analysis.ModelSet | list[str] | None = "paper",
    html: bool = False,
) -> list[Path]:
    """Write ``accuracies.csv``, ``fits.csv``, ``per_model.csv/.md``, ``rank_agreement.csv``, figures
    and ``REPORT.md`` for every pair of test sets in ``table``; trends are fitted over ``model_set``
    (see :func:`generalization.analysis.trends.get_model_set`); with ``html`` also the interactive
    ``explorer.html``. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if table.empty:
        raise DataError("no accuracy rows to analyze (is the store empty?)")
    with analysis.reuse_pairs():
        return _write_results(table, out, n_bootstrap=n_bootstrap, seed=seed, level=level,
                              mset=analysis.get_model_set(model_set), html=html)  # fmt: skip


def _write_results(table: pd.DataFrame, out: Path, *, n_bootstrap: int, seed: int, level: float,
                   mset: analysis.ModelSet, html: bool = False) -> list[Path]:  # fmt: skip
    written = []
    acc = table.copy()
    for col in ("flag", "repair"):
        _text_column(acc, col)
    acc_cols = ACCURACY_COLUMNS + ["flag", "repair"] + (["model_type"] if "model_type" in acc else [])
    written.append(_csv(acc[acc_cols], out / "accuracies.csv"))

    fits_df, fits = analysis.fit_trends(acc, model_set=mset, n_bootstrap=n_bootstrap, level=level, seed=seed)
    written.append(_csv(fits_df, out / "fits.csv"))
    per_model = analysis.residuals(acc, fits, level=level)
    written.append(_csv(per_model, out / "per_model.csv"))
    ranks = analysis.rank_agreement(acc)
    written.append(_csv(ranks, out / "rank_agreement.csv"))
    written.append(atomic_write_text(out / "per_model.md", _per_model_md(per_model)))

    pairs = analysis.test_set_pairs(acc)
    by_original: dict[str, list[tuple[str, str]]] = {}
    for o, n in pairs:
        by_original.setdefault(o, []).append((o, n))
    jobs = []  # (path, table, pairs, plot_pairs keywords)
    fig1 = [p for p in FIGURE1_PAIRS if p in pairs]
    if fig1:
        ref = acc[acc["source"].isin(analysis.REFERENCE_SOURCES.values())]
        jobs.append((out / "figure1.png", ref if not ref.empty else acc, fig1,
                     {"scale": "linear", "limits": "fitted",
                      "titles": [FIGURE1_TITLES.get(o, title_of(o)) for o, _ in fig1]}))  # fmt: skip
    for o, ps in by_original.items():
        # built-in originals keep their short stems; a declared original is named in full (no collision)
        stem = {"imagenet-val": "imagenet", "cifar10-test": "cifar10"}.get(o, o)
        jobs += [(out / f"{stem}_{scale}.png", acc, ps, {"scale": scale}) for scale in analysis.SCALES]
    figures = _render_figures(jobs, fits)
    written += figures

    # the landscape's baseline bands are drawn, not reported as the paper's intervals: a few thousand
    # resamples give the band to well under a line width (100,000 here would triple reproduce's time)
    land_paths, land_md = landscape.write_landscape(acc, out, n_bootstrap=min(n_bootstrap, LANDSCAPE_BOOTSTRAP),
                                                    seed=seed, level=level)
    written += land_paths
    text = _report(acc, fits_df, fits, per_model, ranks, figures, out, mset, n_bootstrap, level) + land_md
    written.append(atomic_write_text(out / "REPORT.md", text))
    if html:
        written.append(explorer.write_explorer(acc, per_model, fits_df, out / "explorer.html", "REPORT.md", trend_fits=fits))
    return written


_FIGURE_JOBS: tuple = ()


def _render_one(k: int) -> Path:
    path, table, pairs, kw = _FIGURE_JOBS[0][k]
    return plots.save_figure(plots.plot_pairs(table, pairs, _FIGURE_JOBS[1], **kw), path)


def _render_figures(jobs: list, fits) -> list[Path]:
    """Draw and save the figures; on a machine with more than one core, in two forked processes (drawing is
    most of reproduce's time). The children read the jobs from a module global, so nothing is pickled but
    the paths coming back; the files are the same either way."""
    global _FIGURE_JOBS
    _FIGURE_JOBS = (jobs, fits)
    try:
        if len(jobs) > 1 and (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(2) as pool:
                return pool.map(_render_one, range(len(jobs)))
        return [_render_one(k) for k in range(len(jobs))]
    finally:
        _FIGURE_JOBS = ()


def _per_model_md(per_model: pd.DataFrame) -> str:
    md = ["# Per-model accuracies (top-1, %), gap, prediction interval and effective robustness\n"]
    md.append("Intervals are 95 % Clopper-Pearson (accuracies) and Newcombe (gap). `predicted` = the 95 % "
              "prediction interval of the model set's trend (probit scale), `extrap.` = outside the fitted "
              "models' original accuracies. `ER` = effective robustness (Taori et al. 2020: new minus the "
              "logit baseline of standard models; empty outside its range). `vs linear` = new minus the "
              "linear trend.\n")  # fmt: skip
    for (o, n), g in per_model.groupby(["original_test_set", "new_test_set"], sort=False):
        g = g[g["new"].notna()]
        md.append(f"\n## {title_of(n)} vs {title_of(o)}\n\n")
        view = pd.DataFrame({
            "source": g["source"], "model": g["model"],
            "original": g["orig"], "original 95% CI": [f"{a:.2f}-{b:.2f}" for a, b in zip(g["orig_ci_low"], g["orig_ci_high"], strict=True)],
            "new": g["new"], "new 95% CI": [f"{a:.2f}-{b:.2f}" for a, b in zip(g["new_ci_low"], g["new_ci_high"], strict=True)],
            "gap": g["gap"], "gap 95% CI": [f"{a:.2f}-{b:.2f}" for a, b in zip(g["gap_ci_low"], g["gap_ci_high"], strict=True)],
            "predicted": [f"{a:.2f} ({b:.2f}-{c:.2f})" for a, b, c in zip(g["predicted_new"], g["predicted_new_low"], g["predicted_new_high"], strict=True)],
            "extrap.": ["yes" if v else "" for v in g["extrapolated"]],
            "ER": g["effective_robustness"], "vs linear": g["linear_residual"], "flag": g["flag"],
        })  # fmt: skip
        md.append(_md_table(view))
    return "".join(md)


def _fmt_range(lo: float, hi: float, digits: int = 0) -> str:
    return f"{lo:.{digits}f} % – {hi:.{digits}f} %"


def _mean_changes(acc: pd.DataFrame) -> dict[str, tuple[float, float, int, int]]:
    """Mean change (new - ImageNet, points) of top-1 and top-5 over every ImageNetV2 release model, per new set
    (flagged rows included, as the paper averages over all 67 models); also the count of models and flagged."""
    rel = acc[acc["source"] == IMAGENETV2_RELEASE]
    base = rel[rel["test_set"] == "imagenet-val"].set_index("model")
    out = {}
    for new in PAPER["mean_change"]:
        g = rel[rel["test_set"] == new].set_index("model")
        common = base.index.intersection(g.index)
        if len(common) == 0:
            continue
        d1 = (g.loc[common, "top1"] - base.loc[common, "top1"]).mean()
        d5 = (g.loc[common, "top5"].astype(float) - base.loc[common, "top5"].astype(float)).mean()
        out[new] = (float(d1), float(d5), len(common), int((g.loc[common, "flag"] != "").sum()))
    return out


def _paper_vs_this(acc, fits, per_model, fits_df) -> list[str]:
    L = ["\n## The paper vs this reproduction\n"]
    L.append("Left: numbers the paper prints (Recht et al., ICML 2019). Right: this project's numbers from the "
             "released predictions, over the `paper` model set unless said otherwise.\n")  # fmt: skip
    rows = []

    def add(what, paper, this, why=""):
        rows.append({"quantity": what, "the paper": paper, "this reproduction": this, "why they differ": why})

    def gaps(new):
        g = per_model[(per_model["new_test_set"] == new) & per_model["new"].notna() & (per_model["flag"] == "")]
        fit = fits.get((original_of(new), new, "linear"))
        if fit is not None:
            g = g[[k in set(fit.members) for k in zip(g["source"], g["model"], strict=True)]]
        return g

    g = gaps("cifar10.1-v4")
    if len(g):
        lo, hi = g.loc[g["gap"].idxmin()], g.loc[g["gap"].idxmax()]
        add("CIFAR-10 accuracy drop range (CIFAR-10.1 v4)", _fmt_range(*PAPER["drop_cifar"]),
            f"{_fmt_range(lo['gap'], hi['gap'])} ({lo['gap']:.2f} {lo['model']} – {hi['gap']:.2f} {hi['model']}; "
            f"{len(g)} models)",
            "the paper's CIFAR models include some the 30-model release lacks (e.g. an AutoAugment model "
            "at 98.4 → 95.5, a drop under 3 points)")  # fmt: skip
    g = gaps("imagenetv2-matched-frequency")
    if len(g):
        lo, hi = g.loc[g["gap"].idxmin()], g.loc[g["gap"].idxmax()]
        why = ""
        if round(lo["gap"]) != PAPER["drop_imagenet"][0] or round(hi["gap"]) != PAPER["drop_imagenet"][1]:
            why = (f"same model set; the smallest drop here, {lo['gap']:.2f} points ({lo['model']}), rounds to "
                   f"{round(lo['gap']):.0f}, not {PAPER['drop_imagenet'][0]:.0f}")  # fmt: skip
        add("ImageNet accuracy drop range (MatchedFrequency)", _fmt_range(*PAPER["drop_imagenet"]),
            f"{_fmt_range(lo['gap'], hi['gap'])} ({lo['gap']:.2f} {lo['model']} – {hi['gap']:.2f} {hi['model']}; "
            f"{len(g)} models)", why)  # fmt: skip
    f = fits.get(("imagenet-val", "imagenetv2-matched-frequency", "linear"))
    if f is not None:
        add("ImageNet linear slope (MatchedFrequency), 95 % bootstrap CI",
            f"≈ {PAPER['imagenet_slope']} [{PAPER['imagenet_slope_ci'][0]}, {PAPER['imagenet_slope_ci'][1]}]",
            f"{f.slope:.3f} [{f.slope_ci_low:.3f}, {f.slope_ci_high:.3f}] ({f.n_models} models, {f.model_set} set)")
        add("ImageNet intercept (points), 95 % bootstrap CI",
            f"[{PAPER['imagenet_intercept_ci'][0]}, {PAPER['imagenet_intercept_ci'][1]}] (point estimate not printed)",
            f"{f.intercept:.2f} [{f.intercept_ci_low:.2f}, {f.intercept_ci_high:.2f}]")
        add("bootstrap resamples", f"{PAPER['imagenet_bootstrap']:,}", f"{f.n_bootstrap:,} (seed {f.seed})",
            "" if f.n_bootstrap == PAPER["imagenet_bootstrap"] else "fewer resamples were asked for")
    for v in ("v4", "v6"):
        f = fits.get(("cifar10-test", f"cifar10.1-{v}", "linear"))
        if f is None:
            continue
        add(f"CIFAR-10 linear slope (CIFAR-10.1 {v}), 95 % bootstrap CI",
            f"≈ {PAPER['cifar_slope']} [{PAPER['cifar_slope_ci'][0]}, {PAPER['cifar_slope_ci'][1]}] (v4)",
            f"{f.slope:.3f} [{f.slope_ci_low:.3f}, {f.slope_ci_high:.3f}], intercept {f.intercept:.2f} "
            f"({f.n_models} models)",
            "not reproducible from the release: the paper's fit covers models the 30-model release lacks"
            + ("" if v == "v4" else "; v6 is a later version of the dataset than the paper's v4"))  # fmt: skip
    names = {"imagenetv2-matched-frequency": "MatchedFrequency", "imagenetv2-threshold0.7": "Threshold0.7",
             "imagenetv2-top-images": "TopImages"}  # fmt: skip
    for new, (d1, d5, k, flagged) in _mean_changes(acc).items():
        p1, p5 = PAPER["mean_change"][new]
        why = ""
        if abs(d1 - p1) > 0.1 or abs(d5 - p5) > 0.1:
            why = f"{flagged} of the {k} models flagged (their released arrays kept as they are)" if flagged else "differs"
        add(f"mean change ImageNet → {names[new]}, top-1 / top-5 (points, all release models)",
            f"{p1:+.1f} / {p5:+.1f} (67 models)", f"{d1:+.2f} / {d5:+.2f} ({k} models)", why)
    L.append(_md_table(pd.DataFrame(rows)))
    return L


def _coverage(per_model: pd.DataFrame, fits) -> pd.DataFrame:
    """Share of models *not* fitted whose measured new accuracy lies in their prediction interval."""
    rows = []
    for (o, n, src), g in per_model.groupby(["original_test_set", "new_test_set", "source"], sort=False):
        fit = fits.get((o, n, g["prediction_scale"].iloc[0]))
        if fit is None:
            continue
        members = set(fit.members)
        g = g[g["new"].notna() & (g["flag"] == "")]
        g = g[[k not in members for k in zip(g["source"], g["model"], strict=True)]]
        if g.empty:
            continue
        inside = (g["new"] >= g["predicted_new_low"]) & (g["new"] <= g["predicted_new_high"])
        ex = g["extrapolated"].astype(bool)
        rows.append({"original": o, "new": n, "source": src, "models": len(g), "covered": int(inside.sum()),
                     "coverage %": 100 * inside.mean(), "below": int((g["new"] < g["predicted_new_low"]).sum()),
                     "above": int((g["new"] > g["predicted_new_high"]).sum()),
                     "extrapolated": int(ex.sum()),
                     "coverage % (not extrapolated)": 100 * inside[~ex].mean() if (~ex).any() else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def _report(acc, fits_df, fits, per_model, ranks, figures, out: Path, mset, n_bootstrap: int, level: float) -> str:
    lines = ["# Do classifiers generalize to new test sets? — reproduction report\n"]
    sources = ", ".join(f"`{s}` ({k} rows)" for s, k in acc.groupby("source").size().items())
    lines.append(f"Accuracy rows: {len(acc)} from {sources}. Intervals: 95 % Clopper-Pearson; gap intervals: "
                 "Newcombe's score interval for two independent proportions. Every number below is this "
                 "project's, computed from those rows, unless it is marked as the paper's.\n")  # fmt: skip
    lines.append(f"**Model set of the fits: `{mset.name}`** — {mset.description}. Flagged rows are never "
                 "fitted; models of the fitted sources that the set leaves out are drawn as a separate, unfitted "
                 "group; other sources are drawn against the trend. Slope and intercept intervals: percentile "
                 f"bootstrap over models, {n_bootstrap:,} resamples, seeded.\n")  # fmt: skip
    repaired = acc[acc["repair"] != ""]
    if len(repaired):
        lines.append("\n**Repaired on import** (the importer checks each array against the labels; "
                     "`import imagenetv2 --no-repair` keeps the released arrays):\n")  # fmt: skip
        for r in repaired.itertuples():
            lines.append(f"- `{r.model}` on `{r.test_set}` ({r.source}): {r.repair}; top-1 now {r.top1:.2f} %")
        lines.append("")
    flagged = acc[acc["flag"] != ""]
    if len(flagged):
        lines.append("\n**Flagged rows** (kept in the tables, left out of fits and rank correlations):\n")
        for r in flagged.itertuples():
            lines.append(f"- `{r.model}` on `{r.test_set}` ({r.source}): {r.flag}")
        lines.append("")

    lines += _paper_vs_this(acc, fits, per_model, fits_df)
    if ("cifar10-test", "cifar10.1-v4") in fits:
        f = fits[("cifar10-test", "cifar10.1-v4", "linear")]
        lines.append(f"\n**CIFAR-10.** The paper's CIFAR-10.1 numbers are version 4 of the dataset (e.g. "
                     "resnet_basic_110: 93.5 → 85.2). Its CIFAR-10 fit (slope ≈ 1.7, 95 % CI about [1.63, 1.76]) "
                     "covers models that the 30-model CIFAR-10.1 release does not contain (e.g. its 98.4 → 95.5 "
                     f"AutoAugment model), so **the release cannot reproduce the paper's CIFAR-10 fit**: over the "
                     f"release's {f.n_models} models the v4 slope is {f.slope:.3f} [{f.slope_ci_low:.3f}, "
                     f"{f.slope_ci_high:.3f}]. Figure 1 uses v4, as the paper does.\n")  # fmt: skip

    lines.append("\n## Accuracy drop per test set (original - new, top-1 percentage points)\n")
    lines.append("Per source; for the release sources the `paper` model set's models (`set`) and the others.\n")
    rows = []
    for (o, n), pg in per_model.groupby(["original_test_set", "new_test_set"], sort=False):
        members = set(fits[(o, n, "linear")].members) if (o, n, "linear") in fits else set()
        pg = pg[pg["new"].notna() & (pg["flag"] == "")]
        pg = pg.assign(in_set=[k in members for k in zip(pg["source"], pg["model"], strict=True)])
        for (s, in_set), g in pg.groupby(["source", "in_set"], sort=False):
            best, worst = g.loc[g["gap"].idxmin()], g.loc[g["gap"].idxmax()]
            rows.append({"original": o, "new": n, "source": s, "models": f"{len(g)} ({'set' if in_set else 'not fitted'})",
                         "gap min": g["gap"].min(), "gap median": g["gap"].median(), "gap max": g["gap"].max(),
                         "smallest gap": f"{best['model']} ({best['gap']:.2f})",
                         "largest gap": f"{worst['model']} ({worst['gap']:.2f})"})  # fmt: skip
    lines.append(_md_table(pd.DataFrame(rows)))
    lines.append("\n## Trend fits (new on original top-1)\n")
    lines.append("Linear: percent on both axes. Probit/logit: slope and intercept on the transformed scale. "
                 f"Intervals: {int(100 * level)} % percentile bootstrap over the set's models.\n")  # fmt: skip
    if not fits_df.empty:
        f = fits_df[["original", "new", "scale", "model_set", "n_models", "slope", "slope_ci_low", "slope_ci_high",
                     "intercept", "intercept_ci_low", "intercept_ci_high", "r"]]  # fmt: skip
        lines.append(_md_table(f, ".3f"))
    lines.append("\n## Rank agreement between original and new accuracy\n")
    if not ranks.empty:
        lines.append(_md_table(ranks[["original", "new", "source", "n_models", "spearman_rho", "kendall_tau"]], ".3f"))

    lines += _er_section(per_model)
    lines += _pi_section(per_model, fits, level)
    lines.append("\n## Figures\n")
    lines.append("Figure 1 shows the paper's pairs (CIFAR-10 / CIFAR-10.1 v4, ImageNet / MatchedFrequency) over "
                 "the fitted models' range, like the paper's Figure 1; an inset shows every model over 0–100 %, "
                 "including the models the set leaves out. The other figures show every source.\n")  # fmt: skip
    lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figures]
    lines.append("")
    return "\n".join(lines) + "\n"


def _er_section(per_model: pd.DataFrame) -> list[str]:
    L = ["\n## Effective robustness (Taori et al. 2020)\n"]
    L.append("Effective robustness = a model's new-set accuracy minus the accuracy that a baseline predicts "
             "from its original accuracy, in percentage points. The baseline is a least-squares line through the "
             "**logit**-scaled accuracies of the *standard* models (trained on the original training set only, "
             "no extra data, no robustness intervention), back-transformed to percent. Which models are standard "
             "is data: a `model_type` column in the accuracy table (metadata of the published tables) decides "
             "where present; otherwise the release models of ImageNetV2 / CIFAR-10.1 count as standard except "
             "the Fisher-vector models, and rows of other sources without metadata are left out of the baseline. "
             f"Outside the baseline models' range of original accuracy, widened by {analysis.ER_MARGIN:g} points, "
             "effective robustness is not given (NaN): the line is not extrapolated.\n")  # fmt: skip
    rows = []
    for (_o, n), g in per_model.groupby(["original_test_set", "new_test_set"], sort=False):
        has = g[g["new"].notna()]
        base = has[has["in_er_baseline"].astype(bool)]
        nometa = has[has["standard_basis"] == "no metadata"]
        ok = has[has["effective_robustness"].notna() & (has["flag"] == "")]
        row = {"new": n, "baseline models": len(base),
               "by metadata": int((base["standard_basis"] == "metadata").sum()),
               "by rule": int((base["standard_basis"] == "rule: release model").sum()),
               "rows without metadata (left out)": len(nometa),
               "rows with ER": len(ok), "outside range (NaN)": int((has["effective_robustness"].isna() & (has["flag"] == "")).sum())}  # fmt: skip
        if len(ok):
            hi, lo = ok.loc[ok["effective_robustness"].idxmax()], ok.loc[ok["effective_robustness"].idxmin()]
            row["most above"] = f"{hi['model']} ({hi['source']}, {hi['orig']:.1f} %, {hi['effective_robustness']:+.2f})"
            row["most below"] = f"{lo['model']} ({lo['source']}, {lo['orig']:.1f} %, {lo['effective_robustness']:+.2f})"
        rows.append(row)
    if rows:
        L.append(_md_table(pd.DataFrame(rows)))
    L.append("\n`per_model.csv` also has `linear_residual`: new minus the model set's *linear* trend (the "
             "vertical distance in the paper's figures), which is not effective robustness.\n")  # fmt: skip
    return L


def _pi_section(per_model: pd.DataFrame, fits, level: float) -> list[str]:
    L = [f"\n## Predicted new-set accuracy: {int(100 * level)} % prediction intervals\n"]
    L.append("`predicted_new` with `predicted_new_low`/`_high` in per_model.csv, for every model (also those "
             "with both accuracies): the model set's trend on the **probit** scale (where the trend is linear), "
             "with a Student-t prediction interval whose variance adds the scatter of the fitted models about "
             "the line (their residual variance less their own binomial noise), the binomial noise of the new "
             "test set at the predicted accuracy (delta method), and the uncertainty of the fitted line. "
             "`extrapolated` marks original accuracies outside the fitted models' range. The hollow "
             "\"predicted\" points in the figures carry this interval.\n")  # fmt: skip
    cov = _coverage(per_model, fits)
    if cov.empty:
        L.append("\nNo model outside the fitted set has a measured new accuracy here, so the coverage could not "
                 "be measured (import the timm / testbed tables: `reproduce --timm-results … --testbed-results …`).\n")  # fmt: skip
    else:
        L.append("\n**Measured coverage** on the models that were *not* fitted (their measured new accuracy "
                 "inside their interval):\n\n")  # fmt: skip
        L.append(_md_table(cov, ".1f"))
    pred = per_model[per_model["new"].isna()]
    if len(pred):
        L.append(f"\n{len(pred)} model/test-set pairs have only an original accuracy; the figures place them at "
                 "the trend's prediction (hollow markers, labelled predicted).\n")  # fmt: skip
    return L


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
    n_bootstrap: int = PAPER_BOOTSTRAP,
    seed: int = 0,
    model_set: str | analysis.ModelSet | list[str] | None = "paper",
    repair: bool = True,
) -> list[Path]:
    """Import whatever releases/tables are given into a store, then :func:`write_results` into ``out``.

    With no source given, rebuild the figures, fits and REPORT.md from ``out/accuracies.csv`` (what the
    project commits in ``results/``), offline. ``model_set``: the models the trends are fitted on (default
    the paper's); ``repair``: let the ImageNetV2 importer repair arrays whose columns are out of rank order.
    """
    out = Path(out)
    given = [imagenetv2_release, cifar101_release, timm_results, testbed_results]
    if not any(v is not None for v in given):
        acc_path = out / "accuracies.csv"
        if not acc_path.exists():
            raise DataError(f"{acc_path}: no release given and no accuracies.csv to rebuild from "
                            "(pass --imagenetv2-release / --cifar101-release, see README)")  # fmt: skip
        return write_results(analysis.read_accuracies(acc_path), out, n_bootstrap=n_bootstrap, seed=seed,
                             model_set=model_set, html=True)

    with tempfile.TemporaryDirectory(prefix="generalization-store-") as tmp:
        st = PredictionStore(store if store is not None else tmp)
        if imagenetv2_release is not None:
            print(importers.import_imagenetv2(imagenetv2_release, st, repair=repair).summary())
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
        return write_results(st.accuracy_table(verify=True), out, n_bootstrap=n_bootstrap, seed=seed, model_set=model_set, html=True)
