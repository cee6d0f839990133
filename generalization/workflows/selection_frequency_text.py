"""REPORT.md of the CIFAR-10H selection-frequency study: :func:`report_context` computes every number and every
conclusion the report states from the study's tables, :func:`render_report` puts them into the template
``templates/selection_frequency_report.md.j2`` (the prose that does not depend on the data).
:func:`regenerate_command` spells the command line that rebuilds the folder from the inputs as they were given.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from fractions import Fraction
from importlib import resources

import numpy as np
import pandas as pd
from scipy import stats

from ..analysis.selection_frequency import CIFAR10H_LICENCE_NOTE

__all__ = ["report_context", "render_report", "regenerate_command", "trend_word", "accuracy_direction"]

#: |Spearman rho| of a quantity against the shift strength from which it is said to grow or fall with the shift
TREND_RHO = 0.8


def _md(df: pd.DataFrame, floatfmt: str = ".2f") -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else format(float(v), floatfmt)
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns)
    return head + "".join(
        "\n| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)
    )


def _sweep_view(s: pd.DataFrame) -> pd.DataFrame:
    g = s.groupby("strength")
    return pd.DataFrame({
        "p": g["strength"].first(),
        "images (mean)": [f"{v:g}" for v in g["n_images"].mean()],
        "shortfall (mean)": [f"{v:g}" for v in g["missing"].mean()],
        "true mean freq.": g["mean_frequency"].mean(),
        "mean gap": g["mean_gap"].mean(),
        "gap range over models": [f"{a:.2f} to {b:.2f}" for a, b in zip(g["min_gap"].min(), g["max_gap"].max(),
                                                                         strict=True)],
        "linear slope": g["slope_linear"].mean(),
        "slope 95% CI (seed mean)": [f"{a:.2f}-{b:.2f}" for a, b in zip(g["slope_linear_ci_low"].mean(),
                                                                         g["slope_linear_ci_high"].mean(), strict=True)],
        "probit slope": g["slope_probit"].mean(),
    })  # fmt: skip


def regenerate_command(
    votes: str | os.PathLike,
    cifar101_release: str | os.PathLike,
    cifar10_labels: str | os.PathLike,
    out: str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    options: Mapping[str, object] | None = None,
) -> str:
    """The ``generalization selection-frequency-report`` command line for these inputs, paths exactly as given
    (quoted for a POSIX shell), one option per line; ``options`` maps further option names (e.g.
    ``"--per-class"``) to their values (a sequence becomes several arguments), given only where not the default."""
    lines = [f"generalization selection-frequency-report --votes {shlex.quote(os.fspath(votes))}",
             f"--cifar101-release {shlex.quote(os.fspath(cifar101_release))}",
             f"--cifar10-labels {shlex.quote(os.fspath(cifar10_labels))}"]  # fmt: skip
    if store is not None:
        lines.append(f"--store {shlex.quote(os.fspath(store))}")
    for name, value in (options or {}).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        lines.append(
            " ".join([name, *(shlex.quote(f"{v:g}" if isinstance(v, float) else str(v)) for v in values)])
        )
    lines.append(f"--out {shlex.quote(os.fspath(out))}")
    return " \\\n    ".join(lines)


def trend_word(strength: Sequence[float], values: Sequence[float]) -> str:
    """One of "grows", "falls" or "shows no steady trend": the sign of Spearman's rho of ``values`` against ``strength``
    when |rho| reaches :data:`TREND_RHO`."""
    x, y = np.asarray(strength, float), np.asarray(values, float)
    if len(x) < 3 or np.ptp(y) == 0:
        return "shows no steady trend"
    rho = stats.spearmanr(x, y).statistic
    return "grows" if rho >= TREND_RHO else "falls" if rho <= -TREND_RHO else "shows no steady trend"


def accuracy_direction(by_bin: pd.DataFrame) -> dict:
    """How accuracy moves with selection frequency in the sampler's bins: ``direction`` ("rises", "falls" or
    "does not move steadily": the models' mean accuracy over the non-empty bins, strictly monotone or not), the
    lowest and the top bin's label and mean accuracy, and how many models are more accurate in the top bin."""
    b = by_bin[by_bin["n"] > 0]
    mean = b.groupby("bin")["accuracy"].mean().sort_index()
    labels = b.groupby("bin")["bin_label"].first()
    d = np.diff(mean.to_numpy())
    direction = "rises" if (d > 0).all() else "falls" if (d < 0).all() else "does not move steadily"
    lo, hi = mean.index[0], mean.index[-1]
    per_model = b.pivot_table(index="model", columns="bin", values="accuracy")
    return {"direction": direction, "n_bins": len(mean), "low_label": labels[lo], "low": float(mean[lo]),
            "top_label": labels[hi], "top": float(mean[hi]), "n_models": len(per_model),
            "n_top_higher": int((per_model[hi] > per_model[lo]).sum())}  # fmt: skip


def _seed_means(s: pd.DataFrame) -> pd.DataFrame:
    return s.groupby("strength")[["mean_gap", "missing", "slope_linear", "slope_probit"]].mean()


def _first_shortfall(s: pd.DataFrame) -> float | None:
    m = _seed_means(s)
    short = m.index[m["missing"] > 0]
    return float(short.min()) if len(short) else None


def _shift_findings(sweeps: Mapping[str, pd.DataFrame], reference: Mapping[str, float], ref_fit) -> dict:
    """The findings of the frequency-shifted resamples against CIFAR-10.1 v6 (see the template's wording)."""
    means = {name: _seed_means(s) for name, s in sweeps.items()}

    def met(s: pd.DataFrame) -> float:  # largest mean gap among strengths where every seed met its target
        ok = s.groupby("strength")["missing"].max() == 0
        gaps = s.groupby("strength")["mean_gap"].mean()[ok]
        return float(gaps.max()) if len(gaps) else float("nan")

    def words(col: str) -> str:
        w = {trend_word(m.index, m[col]) for m in means.values()}
        return w.pop() if len(w) == 1 else "shows no steady trend"

    pooled = pd.concat(sweeps.values())
    shifted = pooled[pooled["strength"] > 0]
    shifted_means = pd.concat([m[m.index > 0] for m in means.values()])
    lin, probit = (
        shifted_means["slope_linear"],
        pd.Series({n: m["slope_probit"].iloc[-1] for n, m in means.items()}),
    )
    lin_side = "above" if (lin > 1).all() else "below" if (lin < 1).all() else "mixed"
    probit_rho = {n: stats.spearmanr(m.index, m["slope_probit"]).statistic for n, m in means.items()}
    if (probit < 1).all() and all(r < 0 for r in probit_rho.values()):
        probit_side = "falls below 1"
    elif (probit > 1).all() and all(r > 0 for r in probit_rho.values()):
        probit_side = "rises above 1"
    else:
        probit_side = "shows no consistent departure from 1"
    max_slope, max_gap = float(pooled["slope_linear"].max()), float(shifted_means["mean_gap"].max())
    reached = ("below" if max_slope < ref_fit.slope_ci_low else "above" if max_slope > ref_fit.slope_ci_high
               else "inside")  # fmt: skip
    ref_side = "above" if ref_fit.slope_ci_low > 1 else "below" if ref_fit.slope_ci_high < 1 else "mixed"
    yes, no = [], []
    if max_gap >= reference["gap"]:
        yes.append("the size of the gap")
    elif max_gap > 0:
        yes.append("part of the size of the gap")
    else:
        no.append("the gap")
    (yes if lin_side == ref_side != "mixed" else no).append("the sign of the slope's departure from 1")
    (yes if reached == "inside" else no).append("its magnitude")
    return {
        "gap_trend": words("mean_gap"),
        "met": {n: met(s) for n, s in sweeps.items()},
        "beyond": {
            n: {
                "gap": float(m["mean_gap"].iloc[-1]),
                "strength": float(m.index[-1]),
                "missing": float(m["missing"].iloc[-1]),
            }
            for n, m in means.items()
        },  # fmt: skip
        "slope_side": lin_side,
        "share_ci_above": float((shifted["slope_linear_ci_low"] > 1).mean())
        if len(shifted)
        else float("nan"),
        "slope_trend": words("slope_linear"),
        "max_slope": max_slope,
        "reached": reached,
        "probit_side": probit_side,
        "probit_strongest": {n: float(v) for n, v in probit.items()},
        "reproduces": " and ".join(yes),
        "not_reproduced": " or ".join(no),
    }


def _fraction_values(k: int) -> str:
    return ", ".join(str(Fraction(i, k)) for i in range(k + 1))


def _matching_verdicts(matching: pd.DataFrame, n_seeds: int) -> list[dict]:
    """Per k: the matched set's bias in true frequency and in the gap per strength, the seed-to-seed spread,
    whether the gap bias is clear of seed noise (every strength beyond 2 standard errors) and its direction."""
    out = []
    for k, g in matching[matching["k"] > 0].groupby("k"):
        m = g.groupby("strength")[["bias_frequency", "bias_gap", "missing"]].mean()
        sd = float(g.groupby("strength")["bias_gap"].std().mean())  # seed-to-seed spread at a fixed strength
        clear = bool((m["bias_gap"].abs() > 2 * sd / np.sqrt(n_seeds)).all())
        freq_sign, gap_sign = np.sign(m["bias_frequency"].mean()), np.sign(m["bias_gap"].mean())
        out.append({
            "k": int(k), "bias_frequency": [float(v) for v in m["bias_frequency"]],
            "bias_gap": [float(v) for v in m["bias_gap"]], "strengths": [float(p) for p in m.index], "sd": sd,
            "beyond_noise": clear, "shortfall": bool((m["missing"] > 0).any()),
            "easier": "easier" if freq_sign > 0 else "harder" if freq_sign < 0 else "as hard",
            "gap": "smaller" if gap_sign < 0 else "larger" if gap_sign > 0 else "no different",
        })  # fmt: skip
    return out


def _estimation(bias: pd.DataFrame, k: int, threshold: float) -> dict:
    """The k-vote estimate against the full-vote frequency: the bias range of the bins below the top one, their
    images, and the top bin's bias and share of images that truly belong lower; plus the empty bins."""
    b = bias[(bias["k"] == k) & (bias["bin"] >= 0)]
    low = b[(b["bin"] < b["bin"].max()) & (b["n"] > 0)]
    top = b[b["bin"] == b["bin"].max()].iloc[0]
    return {"k": int(k), "threshold": threshold, "low_min": float(low["bias"].min()),
            "low_max": float(low["bias"].max()), "low_n": int(low["n"].sum()), "top_bias": float(top["bias"]),
            "top_rebinned_pct": 100 * float(top["share_rebinned"]),
            "empty_bins": [str(lb) for lb in b.loc[b["n"] == 0, "bin_label"]]}  # fmt: skip


def report_context(
    freq: pd.DataFrame,
    counts_shape: tuple[int, int],
    by_bin: pd.DataFrame,
    sweeps: Mapping[str, pd.DataFrame],
    reference: Mapping[str, float],
    ref_fit,
    example: Mapping[str, object],
    bias: pd.DataFrame,
    matching: pd.DataFrame,
    *,
    n_models: int,
    per_class: int,
    seeds: Sequence[int],
    n_bootstrap: int,
    fine_edges: Sequence[float],
    command: str,
    python_only: Sequence[str] = (),
) -> dict:
    """Everything REPORT.md says that depends on the data or the run: counts, tables (as markdown), conclusions.

    ``sweeps`` maps "sampler bins" and "fine bins" to their :func:`shift_sweep` summaries; ``reference`` holds the
    CIFAR-10.1 v6 mean gap (``"gap"``) and ``ref_fit`` its linear fit; ``example`` the example resample
    (``strength``, ``acc`` from :func:`resample_accuracies`, ``fits`` from :func:`fit_resample`)."""
    f, nann = freq["selection_frequency"], freq["num_annotations"]
    sampler = by_bin[by_bin["binning"] == "sampler"] if "binning" in by_bin else by_bin
    g = sampler.groupby(["bin", "bin_label"], sort=True)
    view = pd.DataFrame({"bin": [lb for _, lb in g.groups.keys()], "images": g["n"].first().to_numpy(),
                         "min": g["accuracy"].min().to_numpy(), "mean": g["accuracy"].mean().to_numpy(),
                         "max": g["accuracy"].max().to_numpy()})  # fmt: skip
    edges = sampler.drop_duplicates("bin").sort_values("bin")
    widths = (edges["freq_high"] - edges["freq_low"]).round(9).unique()
    top_share = float(edges["n"].iloc[-1] / edges["n"].sum())
    ks = sorted(int(k) for k in bias["k"].unique())
    threshold = float(edges["freq_low"].iloc[-1])
    mb = matching[matching["k"] > 0].groupby(["k", "strength"])
    acc, fits = example["acc"], example["fits"]
    return {
        "licence_note": CIFAR10H_LICENCE_NOTE,
        "command": command,
        "python_only": list(python_only),
        "n_images": counts_shape[0], "n_classes": counts_shape[1], "n_models": n_models,
        "votes_min": int(nann.min()), "votes_max": int(nann.max()), "median_frequency": float(f.median()),
        "pct_below_threshold": 100 * float((f < threshold).mean()), "threshold": threshold,
        "pct_exactly_1": 100 * float((f == 1).mean()),
        "by_bin_table": _md(view, ".1f"),
        "accuracy": accuracy_direction(sampler),
        "per_class": per_class, "seeds": ", ".join(map(str, seeds)), "first_seed": seeds[0],
        "n_bootstrap": n_bootstrap, "fine_edges": list(fine_edges),
        "bin_width": f"{widths[0]:g} wide" if len(widths) == 1 else "of unequal widths",
        "top_share_pct": 100 * top_share, "almost_all": top_share >= 0.9,
        "first_shortfall": {n: _first_shortfall(s) for n, s in sweeps.items()},
        "max_strength": {n: float(s["strength"].max()) for n, s in sweeps.items()},
        "ref_gap": float(reference["gap"]), "ref_slope": ref_fit.slope, "ref_slope_ci": (ref_fit.slope_ci_low,
                                                                                          ref_fit.slope_ci_high),
        "sweep_tables": [(n, _md(_sweep_view(s), ".3f")) for n, s in sweeps.items()],
        "findings": _shift_findings(sweeps, reference, ref_fit),
        "example": {"strength": float(example["strength"]), "n_images": int(acc["n_new"].iloc[0]),
                    "mean_gap": float(acc["gap"].mean()), "slope": fits["linear"].slope,
                    "slope_ci": (fits["linear"].slope_ci_low, fits["linear"].slope_ci_high),
                    "probit_slope": fits["probit"].slope},
        "bias_table": _md(bias[["k", "bin_label", "n", "mean_estimated", "mean_true", "bias", "mean_abs_error",
                                "share_rebinned"]], ".3f"),
        "k_min": _estimation(bias, ks[0], threshold), "k_min_values": _fraction_values(ks[0]),
        "k_max": _estimation(bias, ks[-1], threshold),
        "matching_table": _md(pd.DataFrame({
            "k": [k for k, _ in mb.groups.keys()], "p": [p for _, p in mb.groups.keys()],
            "images": [f"{v:g}" for v in mb["n_images"].mean()], "shortfall": [f"{v:g}" for v in mb["missing"].mean()],
            "true mean freq.": mb["mean_frequency"].mean().to_numpy(),
            "bias true freq.": mb["bias_frequency"].mean().to_numpy(),
            "mean gap": mb["mean_gap"].mean().to_numpy(), "bias gap (points)": mb["bias_gap"].mean().to_numpy(),
            "sd bias gap": mb["bias_gap"].std().to_numpy(),
        }), ".3f"),
        "matching": {v["k"]: v for v in _matching_verdicts(matching, len(seeds))},
    }  # fmt: skip


def render_report(context: Mapping[str, object]) -> str:
    """REPORT.md from :func:`report_context`'s values and ``templates/selection_frequency_report.md.j2``."""
    import jinja2

    text = (resources.files("generalization").joinpath("workflows/templates/selection_frequency_report.md.j2")
            .read_text(encoding="utf-8"))  # fmt: skip
    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)  # fmt: skip
    env.filters["signed"] = lambda v, digits=2: f"{v:+.{digits}f}"
    return env.from_string(text).render(**context)
