"""Validate label-free prediction (agreement on the line) where the new sets' labels exist.

Imports the ImageNetV2 release (67 models; three new sets) and the CIFAR-10.1 release (30 models; v4, v6) into
a temporary store, predicts every model's new-set top-1 with :func:`generalization.analysis.agreement_validation.validate`
(which never reads the new set's labels), then compares with the measured top-1 and with the accuracy-line
prediction (labels, leave-one-out). Optionally also the null and shifted sets of the new-test-set example
(``--extra-store``; 4 CIFAR ResNets). Writes ``OUT/validation.md`` (the REPORT.md section and the variant tables),
``OUT/validation.csv`` (one row per new set, method and scale); prints the time of each prediction.

    python benchmarks/agreement_validation.py --out results/label-free
    bash examples/new_test_set_cifar10.sh /tmp/example      # then, with its store:
    python benchmarks/agreement_validation.py --out results/label-free --extra-store /tmp/example/store

Rules (docs/label_free.md). They never use the judged set's labels, but note that the four variants' errors on
MatchedFrequency were already known when they were written, so they guard against choosing on that set, not against
every hindsight:

- The reported method is the paper's default, ALine-D on probit scale with an ordinary least-squares line.
- The interval's systematic-offset term for each release set is the root mean square of the mean error (on the
  scale) of the *other* four release sets; for the extra sets, that of all five release sets.
- Two label-free or held-out ways of choosing the scale/method are reported beside it, each applied to every set:
  the agreement line's own R² (higher wins), and leave-one-set-out (the variant with the lowest mean MAE on the
  other release sets).

Data from ``../shared/data`` by default (``--data``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from generalization.analysis import agreement as ag
from generalization.analysis import agreement_validation as av
from generalization.analysis.trends import from_scale, to_scale
from generalization.files import atomic_write_text, csv_text
from generalization.store.importers import import_cifar101, import_imagenetv2

RELEASE_SETS = [
    ("imagenet-val", "imagenetv2-matched-frequency"),
    ("imagenet-val", "imagenetv2-threshold0.7"),
    ("imagenet-val", "imagenetv2-top-images"),
    ("cifar10-test", "cifar10.1-v4"),
    ("cifar10-test", "cifar10.1-v6"),
]
EXAMPLE_SETS = [("cifar10-jpeg75-first1000", "cifar10-jpeg75-new-null"),
                ("cifar10-jpeg75-first1000", "cifar10-jpeg75-new-shifted")]
VARIANTS = [("aline-d", "probit"), ("aline-s", "probit"), ("aline-d", "logit"), ("aline-s", "logit")]
DEFAULT = ("aline-d", "probit")


def _rms(values: list[float]) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def _robust_slope_mae(df: pd.DataFrame) -> dict[str, float]:
    """ALine-D with the agreement line's slope from Theil-Sen and Siegel instead of OLS (sensitivity only)."""
    res = df.attrs["result"]
    sc, n_o, n_n = res.fit["scale"], res.fit["n_original"], res.fit["n_new"]
    xo = to_scale(res.pairs["agreement_original"], sc, n_o)
    yn = to_scale(res.pairs["agreement_new"], sc, n_n)
    index = {m: i for i, m in enumerate(df["model"])}
    pairs = np.array([[index[a], index[b]] for a, b in zip(res.pairs["model_a"], res.pairs["model_b"], strict=True)])
    x = to_scale(df["original_top1"].to_numpy(), sc, n_o)
    out = {}
    for name, fit in (("theil_sen", stats.theilslopes), ("siegel", stats.siegelslopes)):
        z = ag._aline_d(x, xo, yn, pairs, float(fit(yn, xo).slope), len(df))
        out[name] = float(np.mean(np.abs(from_scale(z, sc) - df["actual_new_top1"].to_numpy())))
    return out


def run(data: Path, out: Path, extra_store: Path | None = None, extra_sets: list[tuple[str, str]] | None = None,
        n_image_resamples: int = 100) -> pd.DataFrame:
    rows, no_offset, robust = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        import_imagenetv2(data / "ImageNetV2", store)
        import_cifar101(data / "CIFAR-10.1", store,
                        cifar10_labels=data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")
        jobs = [(store, o, n, "release") for o, n in RELEASE_SETS]
        if extra_store is not None:
            jobs += [(extra_store, o, n, "example") for o, n in (extra_sets or EXAMPLE_SETS)]

        # pass 1: predictions, errors, and the interval without an offset term
        for method, scale in VARIANTS:
            for st, original, new, group in jobs:
                t0 = time.perf_counter()
                df = av.validate(st, original, new, method=method, scale=scale, offset_sd=0.0)
                seconds = time.perf_counter() - t0
                res = df.attrs["result"]
                no_offset[method, scale, new] = df
                row = av.summarize_validation(df, new=new, method=method)
                row.update(group=group, scale=scale, r2=res.fit["r2"], slope=res.fit["slope"],
                           intercept=res.fit["intercept"], n_pairs=res.fit["n_pairs"], level=res.fit["level"],
                           excluded="; ".join(sorted(res.excluded)), warnings=" | ".join(res.warnings),
                           agreement_coverage_no_offset=row["agreement_coverage"],
                           agreement_interval_width_no_offset=row["agreement_interval_width"])
                rows.append(row)
                print(f"{new:30s} {method} {scale}: {res.fit['n_models']} models, {res.fit['n_pairs']} pairs, "
                      f"MAE {row['agreement_mae']:.2f}, {seconds:.2f} s (import excluded)")
                if (method, scale) == DEFAULT:
                    robust.append({"new_test_set": new, "ols": row["agreement_mae"], **_robust_slope_mae(df)})
        summary = pd.DataFrame(rows)

        # pass 2: the interval with the systematic offset seen on the OTHER release sets (same method and scale)
        for i, r in summary.iterrows():
            others = summary[(summary["group"] == "release") & (summary["method"] == r["method"])
                             & (summary["scale"] == r["scale"]) & (summary["new_test_set"] != r["new_test_set"])]
            off = _rms(others["agreement_mean_error_scale"].tolist())
            st, original = next((s, o) for s, o, n, _ in jobs if n == r["new_test_set"])
            df = av.validate(st, original, r["new_test_set"], method=r["method"], scale=r["scale"], offset_sd=off)
            s2 = av.summarize_validation(df, new=r["new_test_set"], method=r["method"])
            summary.loc[i, "offset_sd"] = off
            summary.loc[i, "agreement_coverage"] = s2["agreement_coverage"]
            summary.loc[i, "agreement_interval_width"] = s2["agreement_interval_width"]

        # a label-free alternative widening: the spread between the ALine-S and ALine-D predictions
        q = stats.norm.ppf(0.975)
        for i, r in summary[summary["method"] == "aline-d"].iterrows():
            sc, new = r["scale"], r["new_test_set"]
            d0 = no_offset["aline-d", sc, new]
            s_pred = no_offset["aline-s", sc, new].set_index("model")["predicted_new_top1"]
            z = to_scale(d0["predicted_new_top1"], sc)
            half = to_scale(d0["predicted_high"], sc) - z
            gap = z - to_scale(d0["model"].map(s_pred), sc)
            wide = np.sqrt(half**2 + (q * gap) ** 2)
            act = to_scale(d0["actual_new_top1"], sc)
            summary.loc[i, "agreement_coverage_spread"] = float(100 * np.mean(np.abs(act - z) <= wide))

        # how much the MAE moves with the new set's sample of images (default variant)
        if n_image_resamples:
            for i, r in summary[(summary["method"] == DEFAULT[0]) & (summary["scale"] == DEFAULT[1])].iterrows():
                st, original = next((s, o) for s, o, n, _ in jobs if n == r["new_test_set"])
                b = av.bootstrap_validation_error(st, original, r["new_test_set"], n_resamples=n_image_resamples,
                                                  method=DEFAULT[0], scale=DEFAULT[1])
                lo, hi = np.percentile(b["mae"], [2.5, 97.5])
                summary.loc[i, ["agreement_mae_ci_low", "agreement_mae_ci_high"]] = [lo, hi]
                summary.loc[i, "agreement_mae_le_2_share"] = float(100 * np.mean(b["mae"] <= 2))
                summary.loc[i, "agreement_mae_resample_sd"] = float(np.std(b["mae"], ddof=1))

    _write(summary, pd.DataFrame(robust), out, n_image_resamples)
    return summary


def _rules(summary: pd.DataFrame) -> pd.DataFrame:
    """The scale/method each pre-specified rule picks for each set, and the MAE it then gets."""
    rel = summary[summary["group"] == "release"]
    out = []
    for new, g in summary.groupby("new_test_set", sort=False):
        row = {"new_test_set": new}
        d = g.set_index(["method", "scale"])
        row["default"] = d.loc[DEFAULT, "agreement_mae"]
        best = g[g["method"] == "aline-d"].sort_values(["r2", "scale"], ascending=[False, False]).iloc[0]
        row["r2_rule"] = f"aline-d {best['scale']}: {best['agreement_mae']:.2f}"
        others = rel[rel["new_test_set"] != new].groupby(["method", "scale"])["agreement_mae"].mean()
        pick = others.sort_values(kind="stable").index[0]
        row["loso_rule"] = f"{pick[0]} {pick[1]}: {d.loc[pick, 'agreement_mae']:.2f}"
        out.append(row)
    return pd.DataFrame(out)


def _write(summary: pd.DataFrame, robust: pd.DataFrame, out: Path, n_image_resamples: int) -> None:
    default = summary[(summary["method"] == DEFAULT[0]) & (summary["scale"] == DEFAULT[1])]
    rel = default[default["group"] == "release"]
    all_off = _rms(rel["agreement_mean_error_scale"].tolist())
    ex = default[default["group"] == "example"]
    notes = [
        "Model sets: the ImageNetV2 release's 67 models and the CIFAR-10.1 release's 30"
        + (", and the new-test-set example's 4 CIFAR ResNets (its null and shifted sets, 1,000 images each)"
           if len(ex) else "")
        + "; a model is left out only by the label-free rules (near chance on the original set; new-set "
        "agreements far below the agreement line). Left out: "
        + (", ".join(f"{r.new_test_set}: {r.excluded}" for r in default.itertuples() if r.excluded) or "none") + ".",
        "Method: ALine-D (Baek et al. 2022) on probit scale, ordinary least squares over all model pairs (the "
        "paper's algorithm; fixed in advance, not chosen on these sets). Interval: bootstrap over models + the "
        "agreement points' residual spread + binomial noise of the measured accuracy + a systematic offset between "
        "the agreement and accuracy lines whose SD, on probit scale, is the root mean square of the mean error of "
        "the *other* release sets (e.g. "
        + ", ".join(f"{r.new_test_set} {r.offset_sd:.3f}" for r in rel.itertuples())
        + (f"; {all_off:.3f}, from all five, for the example's sets" if len(ex) else "")
        + "). In brackets after the coverage: without the offset term.",
        f"MAE in brackets: 2.5-97.5 % range over {n_image_resamples} resamples of the new set's images (agreements, "
        "predictions and measured accuracies recomputed on each; original set fixed). Mean interval width (points), "
        "label-free with / without the offset term, and accuracy line: "
        + "; ".join(f"{r.new_test_set} {r.agreement_interval_width:.1f} / {r.agreement_interval_width_no_offset:.1f}"
                    f" / {r.accuracy_line_interval_width:.1f}" for r in default.itertuples()) + ".",
        "Accuracy line: ordinary least squares on probit scale with the labels, each model left out of its own fit.",
    ]
    if len(ex):
        notes.append("Warnings on the example's sets: " + "; ".join(
            f"{r.new_test_set}: {r.warnings or 'none'}" for r in ex.itertuples()))
    notes.append("Regenerate: `python benchmarks/agreement_validation.py --out results/label-free "
                 "[--extra-store OUT/store]` (OUT from `examples/new_test_set_cifar10.sh OUT`).")
    section = av.agreement_report_section(default, notes=notes)
    mf = default[default["new_test_set"] == "imagenetv2-matched-frequency"]
    if len(mf) and "agreement_mae_resample_sd" in mf:
        r = mf.iloc[0]
        v = summary[summary["new_test_set"] == "imagenetv2-matched-frequency"].set_index(["method", "scale"])
        section += (
            f"\n**MatchedFrequency against the 2-point target.** The pre-specified method gives MAE "
            f"{r['agreement_mae']:.2f} (max {r['agreement_max_error']:.2f}, mean error {r['agreement_mean_error']:+.2f}: "
            "nearly all of it a shared offset); the two ways of choosing the scale or method below give "
            + " and ".join(_rules(summary).set_index("new_test_set").loc["imagenetv2-matched-frequency",
                                                                          ["r2_rule", "loso_rule"]])
            + ". Over resamples of the 10,000 images the MAE has SD "
            f"{r['agreement_mae_resample_sd']:.2f} and is at most 2 in {r['agreement_mae_le_2_share']:.0f} % of them, "
            "so 2.01 vs 2 is within sampling noise, but the target is not met. Logit scale gives "
            f"{v.loc[('aline-d', 'logit'), 'agreement_mae']:.2f} (ALine-D) and "
            f"{v.loc[('aline-s', 'logit'), 'agreement_mae']:.2f} (ALine-S); it is not used because nothing but "
            "this set's own labels favours it (R² and the other sets do not).\n")

    pivot = summary.pivot_table(index="new_test_set", columns=["method", "scale"], values="agreement_mae", sort=False)
    lines = ["", "### Label-free MAE (points) by method and scale (same models)", "",
             "| new test set | " + " | ".join(f"{m} {s}" for m, s in pivot.columns) + " | R² probit | R² logit |",
             "|---|" + "---:|" * (len(pivot.columns) + 2)]
    r2 = summary[summary["method"] == "aline-d"].pivot_table(index="new_test_set", columns="scale", values="r2",
                                                              sort=False)
    for name, r in pivot.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in r)
                     + f" | {r2.loc[name, 'probit']:.5f} | {r2.loc[name, 'logit']:.5f} |")
    rules = _rules(summary)
    lines += ["", "### What each pre-specified choice gives", "",
              "Each rule is applied to every set. R² rule: for ALine-D, the scale whose agreement line has the "
              "higher R² (label-free). Leave-one-set-out: the variant of the table above with the lowest mean MAE "
              "on the other four release sets (labels of *other* sets only).", "",
              "| new test set | default (aline-d probit) | R² rule | leave-one-set-out |", "|---|---:|---:|---:|"]
    lines += [f"| {r.new_test_set} | {r.default:.2f} | {r.r2_rule} | {r.loso_rule} |" for r in rules.itertuples()]
    lines += ["", "### Interval coverage (%) by how the systematic offset is covered (ALine-D)", "",
              "| new test set | scale | no offset term | + ALine-S/ALine-D spread | + offset of the other shifts |",
              "|---|---|---:|---:|---:|"]
    for r in summary[summary["method"] == "aline-d"].itertuples():
        lines.append(f"| {r.new_test_set} | {r.scale} | {r.agreement_coverage_no_offset:.0f} | "
                     f"{r.agreement_coverage_spread:.0f} | {r.agreement_coverage:.0f} |")
    lines += ["", "### Sensitivity: robust slopes for the agreement line (ALine-D, probit; not the paper's method)",
              "", "| new test set | OLS (default) | Theil-Sen | Siegel |", "|---|---:|---:|---:|"]
    lines += [f"| {r.new_test_set} | {r.ols:.2f} | {r.theil_sen:.2f} | {r.siegel:.2f} |" for r in robust.itertuples()]
    lines += ["", "These robust fits were tried after the MatchedFrequency errors of the table above had been seen, "
              "so they are reported as a sensitivity check, not as a method choice."]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "validation.md", section + "\n".join(lines) + "\n")
    atomic_write_text(out / "validation.csv", csv_text(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data",
                        help="the shared data folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/label-free"), help="default: %(default)s")
    parser.add_argument("--extra-store", type=Path, default=None,
                        help="a store with more labelled sets, e.g. OUT/store of examples/new_test_set_cifar10.sh")
    parser.add_argument("--extra-set", action="append", default=None, metavar="ORIGINAL:NEW",
                        help="a pair of test sets in --extra-store (repeatable; default: the example's null and "
                             "shifted sets)")
    parser.add_argument("--image-resamples", type=int, default=100,
                        help="resamples of each new set's images for the MAE's range (0: none; default: %(default)s)")
    args = parser.parse_args()
    extra = [tuple(s.split(":", 1)) for s in args.extra_set] if args.extra_set else None
    summary = run(args.data, args.out, args.extra_store, extra, args.image_resamples)
    cols = ["new_test_set", "method", "scale", "n_models", "r2", "agreement_mae", "agreement_max_error",
            "agreement_coverage", "agreement_coverage_no_offset", "accuracy_line_mae", "accuracy_line_max_error",
            "accuracy_line_coverage", "no_drop_mae", "offset_sd"]
    print(summary[cols].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
