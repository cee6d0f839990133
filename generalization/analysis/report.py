"""Results folder: accuracy and fit tables, per-model tables, figures and REPORT.md.

``write_results`` turns an accuracy table into the results folder. REPORT.md is the template
``templates/report.md.j2`` rendered with :func:`report_context`: the template holds the prose, the context every
number and every conclusion drawn from the numbers. ``generalization.workflows.reproduce`` imports the
releases first (or, given none, rebuilds from the folder's own ``accuracies.csv``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..files import DataError, atomic_write_text, csv_text
from ..metrics import ACCURACY_COLUMNS
from ..sources import IMAGENETV2_RELEASE, SOURCES
from ..test_sets import original_of, title_of
from . import explorer, landscape, plots
from . import trends as analysis
from .agreement_validation import agreement_report_section

__all__ = ["write_results", "report_context", "render_report", "FIGURE1_PAIRS", "PAPER", "PAPER_BOOTSTRAP"]

#: the paper's Figure 1: CIFAR-10.1 and ImageNetV2 MatchedFrequency, linear fits. The paper's CIFAR-10.1
#: numbers are version 4 (e.g. resnet_basic_110: 93.5 -> 85.2), so Figure 1 pairs CIFAR-10 with v4.
FIGURE1_PAIRS = [("cifar10-test", "cifar10.1-v4"), ("imagenet-val", "imagenetv2-matched-frequency")]
FIGURE1_TITLES = {"cifar10-test": "CIFAR-10", "imagenet-val": "ImageNet"}
#: the short names REPORT.md uses for the paper's test sets
SHORT_TITLES = {**FIGURE1_TITLES, "cifar10.1-v4": "CIFAR-10.1 v4", "cifar10.1-v6": "CIFAR-10.1 v6",
                "imagenetv2-matched-frequency": "MatchedFrequency", "imagenetv2-threshold0.7": "Threshold0.7",
                "imagenetv2-top-images": "TopImages"}  # fmt: skip

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
    # a model of the paper's CIFAR-10 fit that the 30-model release lacks: AutoAugment, 98.4 -> 95.5
    "cifar_missing_model": (98.4, 95.5),
    # mean change (points) from ImageNet to each new set over the release's 67 models: (top-1, top-5)
    "mean_change": {
        "imagenetv2-matched-frequency": (-11.8, -8.2),
        "imagenetv2-threshold0.7": (-3.2, -1.2),
        "imagenetv2-top-images": (2.1, 1.8),
    },
}


def _csv(df: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, csv_text(df))


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
    # the landscape's baseline bands are drawn, not reported as the paper's intervals: a few thousand
    # resamples give the band to well under a line width (100,000 here would triple reproduce's time)
    draw_landscape = partial(landscape.write_landscape, acc, out, n_bootstrap=min(n_bootstrap, LANDSCAPE_BOOTSTRAP),
                             seed=seed, level=level)  # fmt: skip
    # the landscape needs no trend fit: it is drawn in the background (the longest task) while the fits are made
    with _in_background(draw_landscape) as landscape_result:
        paths, (fits_df, fits, per_model, ranks, figures) = _write_paper_results(
            acc, out, n_bootstrap=n_bootstrap, seed=seed, level=level, mset=mset)
        land_paths, land_md = landscape_result()
    written += paths + land_paths
    text = render_report(report_context(acc, fits_df, fits, per_model, ranks, figures, out, mset, n_bootstrap, level,
                                        landscape_md=land_md))  # fmt: skip
    written.append(atomic_write_text(out / "REPORT.md", text))
    if html:
        written.append(explorer.write_explorer(acc, per_model, fits_df, out / "explorer.html", "REPORT.md", trend_fits=fits))
    return written


def _write_paper_results(acc: pd.DataFrame, out: Path, *, n_bootstrap: int, seed: int, level: float,
                         mset: analysis.ModelSet) -> tuple[list[Path], tuple]:  # fmt: skip
    """The paper's analysis: fits, per-model table, rank agreement and figures. Returns the paths written and
    ``(fits_df, fits, per_model, ranks, figures)``."""
    written = []
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
    figures = _run_tasks([partial(_render_one, job, fits) for job in jobs])
    written += figures
    return written, (fits_df, fits, per_model, ranks, figures)


_TASKS: list = []
#: processes that draw the paper's figures when the machine has more than one core (the landscape is drawn in one
#: more, started before the trend fits)
DRAWING_PROCESSES = 2


def _render_one(job: tuple, fits) -> Path:
    path, table, pairs, kw = job
    return plots.save_figure(plots.plot_pairs(table, pairs, fits, **kw), path)


def _run_task(k: int):
    return _TASKS[k]()


def _can_fork(processes: int) -> bool:
    return processes > 1 and "fork" in multiprocessing.get_all_start_methods()


@contextmanager
def _in_background(task: Callable[[], Any]) -> Iterator[Callable[[], Any]]:
    """Start ``task`` in a forked process now and yield a function that waits for its result; where
    :func:`_run_tasks` would not fork, the function runs the task itself. The child is stopped on the way out if
    its result was never asked for (an error in the caller)."""
    global _TASKS
    if not _can_fork(min(DRAWING_PROCESSES, os.cpu_count() or 1)):
        yield task
        return
    _TASKS = [task]
    try:
        pool = multiprocessing.get_context("fork").Pool(1)  # the child reads the task from _TASKS as forked
    finally:
        _TASKS = []
    pending = pool.apply_async(_run_task, (0,))
    try:
        yield pending.get
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _run_tasks(tasks: list[Callable[[], Any]]) -> list:
    """Run zero-argument tasks and return their results in order; on a machine with more than one core, in
    :data:`DRAWING_PROCESSES` forked processes, one task at a time each (drawing is most of reproduce's time).
    The children read the tasks from a module global, so nothing is pickled but the results coming back; the
    files are the same either way."""
    global _TASKS
    _TASKS = tasks
    try:
        processes = min(DRAWING_PROCESSES, os.cpu_count() or 1, len(tasks))
        if _can_fork(processes):
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                return pool.map(_run_task, range(len(tasks)), chunksize=1)
        return [task() for task in tasks]
    finally:
        _TASKS = []


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


def _short(name: str) -> str:
    return SHORT_TITLES.get(name, title_of(name))


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


def _set_gaps(per_model: pd.DataFrame, fits, new: str) -> pd.DataFrame:
    """Unflagged rows of ``new`` with both accuracies, restricted to the linear fit's model set."""
    g = per_model[(per_model["new_test_set"] == new) & per_model["new"].notna() & (per_model["flag"] == "")]
    fit = fits.get((original_of(new), new, "linear"))
    if fit is not None:
        g = g[[k in set(fit.members) for k in zip(g["source"], g["model"], strict=True)]]
    return g


def _drop_why(lo: pd.Series, hi: pd.Series, paper: tuple[float, float]) -> tuple[list[str], bool]:
    """Which ends of a drop range differ from the paper's once rounded as the paper rounds (whole points),
    and whether the smallest drop here is larger than the paper's (models with smaller drops are missing)."""
    parts = []
    for what, r, p in (("smallest", lo, paper[0]), ("largest", hi, paper[1])):
        if round(r["gap"]) != p:
            parts.append(f"the {what} drop here, {r['gap']:.2f} points ({r['model']}), rounds to {round(r['gap']):.0f}, "
                         f"not {p:.0f}")  # fmt: skip
    return parts, round(lo["gap"]) > paper[0]


def _compare(est: float, lo: float, hi: float, paper: float | None, paper_ci: tuple[float, float],
             what: str) -> tuple[list[str], bool]:  # fmt: skip
    """Phrases comparing an estimate and its interval with the paper's (point estimate, if printed, and
    interval); and whether they agree (the paper's point in ours, ours in the paper's interval)."""
    plo, phi = paper_ci
    out, agree = [], True
    if paper is not None:
        if lo <= paper <= hi:
            out.append(f"the paper's ≈ {paper:g} lies inside this interval")
        else:
            agree = False
            out.append(f"the paper's ≈ {paper:g} lies {'above' if paper > hi else 'below'} this interval")
    if plo <= est <= phi:
        out.append(f"this {what} lies inside the paper's interval")
    else:
        agree = False
        out.append(f"this {what} ({est:.3f}) lies {'above' if est > phi else 'below'} the paper's interval")
    out.append("the intervals overlap" if max(lo, plo) <= min(hi, phi) else "the intervals do not overlap")
    return out, agree


def _paper_rows(acc, fits, per_model, mset) -> tuple[pd.DataFrame, list[str], dict | None]:
    """The paper-vs-this table, the conclusions drawn from it, and the CIFAR-10 paragraph's values."""
    rows = []

    def add(what, paper, this, why=""):
        rows.append({"quantity": what, "the paper": paper, "this reproduction": this, "why they differ": why})

    n_cifar = None
    g = _set_gaps(per_model, fits, "cifar10.1-v4")
    if len(g):
        lo, hi = g.loc[g["gap"].idxmin()], g.loc[g["gap"].idxmax()]
        parts, missing = _drop_why(lo, hi, PAPER["drop_cifar"])
        a, b = PAPER["cifar_missing_model"]
        why = "; ".join(parts)
        if missing:  # the release lacks the paper's models with the smallest drops
            why += (f": the paper's CIFAR models include some the {len(g)}-model release lacks (e.g. an AutoAugment "
                    f"model at {a} → {b}, a drop of {a - b:.1f} points)")  # fmt: skip
        add("CIFAR-10 accuracy drop range (CIFAR-10.1 v4)", _fmt_range(*PAPER["drop_cifar"]),
            f"{_fmt_range(lo['gap'], hi['gap'])} ({lo['gap']:.2f} {lo['model']} – {hi['gap']:.2f} {hi['model']}; "
            f"{len(g)} models)", why)  # fmt: skip
    g = _set_gaps(per_model, fits, "imagenetv2-matched-frequency")
    if len(g):
        lo, hi = g.loc[g["gap"].idxmin()], g.loc[g["gap"].idxmax()]
        parts, _ = _drop_why(lo, hi, PAPER["drop_imagenet"])
        same = "same model set" if mset.name == "paper" else f"model set `{mset.name}`, not the paper's"
        add("ImageNet accuracy drop range (MatchedFrequency)", _fmt_range(*PAPER["drop_imagenet"]),
            f"{_fmt_range(lo['gap'], hi['gap'])} ({lo['gap']:.2f} {lo['model']} – {hi['gap']:.2f} {hi['model']}; "
            f"{len(g)} models)", "; ".join([same, *parts]) if parts else "")  # fmt: skip
    f = fits.get(("imagenet-val", "imagenetv2-matched-frequency", "linear"))
    if f is not None:
        phrases, agree = _compare(f.slope, f.slope_ci_low, f.slope_ci_high, PAPER["imagenet_slope"],
                                  PAPER["imagenet_slope_ci"], "slope")  # fmt: skip
        add("ImageNet linear slope (MatchedFrequency), 95 % bootstrap CI",
            f"≈ {PAPER['imagenet_slope']} [{PAPER['imagenet_slope_ci'][0]}, {PAPER['imagenet_slope_ci'][1]}]",
            f"{f.slope:.3f} [{f.slope_ci_low:.3f}, {f.slope_ci_high:.3f}] ({f.n_models} models, {f.model_set} set)",
            "" if agree else "; ".join(phrases))  # fmt: skip
        phrases, agree = _compare(f.intercept, f.intercept_ci_low, f.intercept_ci_high, None,
                                  PAPER["imagenet_intercept_ci"], "intercept")  # fmt: skip
        add("ImageNet intercept (points), 95 % bootstrap CI",
            f"[{PAPER['imagenet_intercept_ci'][0]}, {PAPER['imagenet_intercept_ci'][1]}] (point estimate not printed)",
            f"{f.intercept:.2f} [{f.intercept_ci_low:.2f}, {f.intercept_ci_high:.2f}]",
            "" if agree and phrases[-1] == "the intervals overlap" else "; ".join(phrases))  # fmt: skip
        add("bootstrap resamples", f"{PAPER['imagenet_bootstrap']:,}", f"{f.n_bootstrap:,} (seed {f.seed})",
            "" if f.n_bootstrap == PAPER["imagenet_bootstrap"] else "fewer resamples were asked for")
    cifar = None
    for v in ("v4", "v6"):
        f = fits.get(("cifar10-test", f"cifar10.1-{v}", "linear"))
        if f is None:
            continue
        phrases, _ = _compare(f.slope, f.slope_ci_low, f.slope_ci_high, PAPER["cifar_slope"], PAPER["cifar_slope_ci"],
                              "slope")  # fmt: skip
        n_cifar = f.n_models
        add(f"CIFAR-10 linear slope (CIFAR-10.1 {v}), 95 % bootstrap CI",
            f"≈ {PAPER['cifar_slope']} [{PAPER['cifar_slope_ci'][0]}, {PAPER['cifar_slope_ci'][1]}] (v4)",
            f"{f.slope:.3f} [{f.slope_ci_low:.3f}, {f.slope_ci_high:.3f}], intercept {f.intercept:.2f} "
            f"({f.n_models} models)",
            f"not reproducible from the release: the paper's fit covers models the {f.n_models}-model release lacks"
            + ("" if v == "v4" else "; v6 is a later version of the dataset than the paper's v4")
            + "; " + "; ".join(phrases))  # fmt: skip
        if v == "v4":
            a, b = PAPER["cifar_missing_model"]
            cifar = {"n_models": n_cifar, "slope": f.slope, "slope_ci_low": f.slope_ci_low,
                     "slope_ci_high": f.slope_ci_high, "paper_slope": PAPER["cifar_slope"],
                     "paper_ci": PAPER["cifar_slope_ci"], "missing_example": f"an AutoAugment model at {a} → {b}",
                     "comparison": "; ".join(phrases),
                     "in_figure1": ("cifar10-test", "cifar10.1-v4") in FIGURE1_PAIRS}  # fmt: skip
    for new, (d1, d5, k, flagged) in _mean_changes(acc).items():
        p1, p5 = PAPER["mean_change"][new]
        why = ""
        if abs(d1 - p1) > 0.1 or abs(d5 - p5) > 0.1:
            why = f"{flagged} of the {k} models flagged (their released arrays kept as they are)" if flagged else "differs"
        add(f"mean change ImageNet → {_short(new)}, top-1 / top-5 (points, all release models)",
            f"{p1:+.1f} / {p5:+.1f} (67 models)", f"{d1:+.2f} / {d5:+.2f} ({k} models)", why)
    return pd.DataFrame(rows), _conclusions(fits, per_model), cifar


def _conclusions(fits, per_model) -> list[str]:
    """Per Figure 1 pair: the direction of every drop and of the linear slope against 1 (the paper's central
    claim: a slope above 1, gains on the original test set translate into larger gains on the new one)."""
    out = []
    for o, n in FIGURE1_PAIRS:
        f = fits.get((o, n, "linear"))
        g = _set_gaps(per_model, fits, n)
        if f is None or g.empty:
            continue
        up = int((g["gap"] < 0).sum())
        drops = (f"every model is less accurate on {_short(n)} (drops {g['gap'].min():.2f} to {g['gap'].max():.2f} "
                 "points)" if up == 0 else f"{up} of {len(g)} models are more accurate on {_short(n)}")  # fmt: skip
        lo, hi = f.slope_ci_low, f.slope_ci_high
        if lo > 1:
            slope = (f"the linear slope {f.slope:.3f} [{lo:.3f}, {hi:.3f}] lies above 1: gains on {_short(o)} "
                     f"translate into larger gains on {_short(n)}, as the paper finds")  # fmt: skip
        elif hi < 1:
            slope = (f"the linear slope {f.slope:.3f} [{lo:.3f}, {hi:.3f}] lies below 1: gains on {_short(o)} "
                     f"translate into smaller gains on {_short(n)}, unlike the paper")  # fmt: skip
        else:
            slope = (f"the interval of the linear slope {f.slope:.3f} [{lo:.3f}, {hi:.3f}] includes 1: no evidence "
                     f"that gains on {_short(o)} translate into larger gains on {_short(n)}")  # fmt: skip
        out.append(f"{_short(o)} → {_short(n)} ({len(g)} models, `{f.model_set}` set): {drops}; {slope}.")
    return out


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


def _coverage_verdicts(cov: pd.DataFrame, level: float) -> list[str]:
    """One line per coverage row: does its covered count agree with the nominal level (inside the central 95 %
    range of Binomial(models, level)), and if not, which way it misses and what extrapolation explains."""
    out = []
    for r in cov.to_dict("records"):
        k, m, ex = r["covered"], r["models"], r["extrapolated"]
        lo, hi = stats.binom.interval(0.95, m, level)
        head = f"`{r['source']}` on `{r['new']}`: {k} of {m} covered ({100 * k / m:.1f} %)"
        few = " (too few models to say much)" if m < 10 else ""
        if lo <= k <= hi:
            out.append(f"{head}, consistent with the nominal level{few}")
            continue
        side = "below" if k < lo else "above"
        line = f"{head}, {side} the nominal level{few}: {r['above']} lie above their interval, {r['below']} below it"
        if ex:
            line += f"; {ex} of the {m} are extrapolated"
            if m > ex:
                line += f", and {r['coverage % (not extrapolated)']:.1f} % of the other {m - ex} are covered"
        out.append(line)
    return out


def _drops_table(per_model: pd.DataFrame, fits) -> str:
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
    return _md_table(pd.DataFrame(rows))


def _er_table(per_model: pd.DataFrame) -> str:
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
    return _md_table(pd.DataFrame(rows)) if rows else ""


def _default_standard_models() -> str:
    """Which models count as standard when a table has no ``model_type``: the fitting-baseline sources' models
    less their non-standard ones, as :mod:`generalization.sources` registers them."""
    parts = []
    for s in sorted(SOURCES.values(), key=lambda s: s.name):
        if s.fits_baseline:
            parts.append(f"the {s.label}" + (f" except {', '.join(f'`{m}`' for m in s.non_standard)}"
                                              if s.non_standard else ""))
    return "; ".join(parts) if parts else "no models"


def _label_free_section(out: Path) -> str:
    """The label-free prediction section from ``out/label-free/validation.csv`` (written by
    ``benchmarks/agreement_validation.py``), or ``""`` when the folder has none."""
    path = out / "label-free" / "validation.csv"
    if not path.exists():
        return ""
    try:
        summary = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not readable as a CSV ({e})") from e
    try:
        return agreement_report_section(summary)
    except KeyError as e:
        raise DataError(f"{path}: missing column {e}") from e
    except DataError as e:
        raise DataError(f"{path}: {e}") from e


def report_context(acc, fits_df, fits, per_model, ranks, figures, out: Path, mset, n_bootstrap: int, level: float,
                   landscape_md: str = "") -> dict:  # fmt: skip
    """Everything REPORT.md says that depends on the data: counts, tables (as markdown), conclusions."""
    paper_table, conclusions, cifar = _paper_rows(acc, fits, per_model, mset)
    cov = _coverage(per_model, fits)
    fit_cols = ["original", "new", "scale", "model_set", "n_models", "slope", "slope_ci_low", "slope_ci_high",
                "intercept", "intercept_ci_low", "intercept_ci_high", "r"]  # fmt: skip
    fig1 = [p for p in FIGURE1_PAIRS if any(f.stem == "figure1" for f in figures)]
    return {
        "n_rows": len(acc),
        "source_counts": [(s, int(k)) for s, k in acc.groupby("source").size().items()],
        "model_set": {"name": mset.name, "description": mset.description},
        "n_bootstrap": n_bootstrap,
        "level_pct": int(100 * level),
        "repaired": acc[acc["repair"] != ""].to_dict("records"),
        "flagged": acc[acc["flag"] != ""].to_dict("records"),
        "paper_table": _md_table(paper_table).rstrip("\n"),
        "paper_conclusions": conclusions,
        "cifar": cifar,
        "drops_table": _drops_table(per_model, fits).rstrip("\n"),
        "fits_table": "" if fits_df.empty else _md_table(fits_df[fit_cols], ".3f").rstrip("\n"),
        "ranks_table": "" if ranks.empty else _md_table(
            ranks[["original", "new", "source", "n_models", "spearman_rho", "kendall_tau"]], ".3f").rstrip("\n"),
        "er_margin": analysis.ER_MARGIN,
        "er_default_standard": _default_standard_models(),
        "er_table": _er_table(per_model).rstrip("\n"),
        "coverage_table": "" if cov.empty else _md_table(cov, ".1f").rstrip("\n"),
        "coverage_verdicts": [] if cov.empty else _coverage_verdicts(cov, level),
        "n_predicted_only": int(per_model["new"].isna().sum()),
        "figure1_pairs": [f"{_short(o)} / {_short(n)}" for o, n in fig1 if (o, n) in set(analysis.test_set_pairs(acc))],
        "figures": [(p.stem, p.relative_to(out).as_posix()) for p in figures],
        "landscape": landscape_md.strip("\n"),
        "label_free": _label_free_section(out).strip("\n"),
    }  # fmt: skip


def render_report(context: dict) -> str:
    """REPORT.md from :func:`report_context`'s values and the template ``templates/report.md.j2``."""
    import jinja2

    text = resources.files("generalization").joinpath("analysis/templates/report.md.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)  # fmt: skip
    return env.from_string(text).render(**context)
