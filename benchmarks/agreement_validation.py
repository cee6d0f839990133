"""Validate label-free prediction (agreement on the line) where the new sets' labels exist.

Imports the ImageNetV2 release (67 models; three new sets) and the CIFAR-10.1 release (30 models; v4, v6) into
a temporary store, predicts every model's new-set top-1 with :func:`generalization.analysis.agreement.validate`
(which never reads the new set's labels), then compares with the measured top-1 and with the accuracy-line
prediction (labels, leave-one-out). Writes ``OUT/validation.md`` (the REPORT.md section), ``OUT/validation.csv``
(one row per new set, method and scale); prints the time of each prediction.

    python benchmarks/agreement_validation.py --out results/label-free

Data from ``../shared/data`` by default (``--data``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from generalization.analysis import agreement as ag
from generalization.files import atomic_write_text
from generalization.store.importers import import_cifar101, import_imagenetv2

SETS = [
    ("imagenet-val", "imagenetv2-matched-frequency"),
    ("imagenet-val", "imagenetv2-threshold0.7"),
    ("imagenet-val", "imagenetv2-top-images"),
    ("cifar10-test", "cifar10.1-v4"),
    ("cifar10-test", "cifar10.1-v6"),
]
VARIANTS = [("aline-d", "probit"), ("aline-s", "probit"), ("aline-d", "logit"), ("aline-s", "logit")]


def run(data: Path, out: Path) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        import_imagenetv2(data / "ImageNetV2", store)
        import_cifar101(data / "CIFAR-10.1", store,
                        cifar10_labels=data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")
        for method, scale in VARIANTS:
            for original, new in SETS:
                t0 = time.perf_counter()
                df = ag.validate(store, original, new, method=method, scale=scale)
                seconds = time.perf_counter() - t0
                res = df.attrs["result"]
                row = ag.summarize_validation(df, new=new, method=method)
                row.update(scale=scale, r2=res.fit["r2"], slope=res.fit["slope"], intercept=res.fit["intercept"],
                           n_pairs=res.fit["n_pairs"], level=res.fit["level"],
                           excluded="; ".join(sorted(res.excluded)))
                rows.append(row)
                print(f"{new:30s} {method} {scale}: {res.fit['n_models']} models, {res.fit['n_pairs']} pairs, "
                      f"MAE {row['agreement_mae']:.2f}, {seconds:.2f} s (import excluded)")
    summary = pd.DataFrame(rows)
    default = summary[(summary["method"] == "aline-d") & (summary["scale"] == "probit")]
    notes = [
        "Model sets: the ImageNetV2 release's 67 models and the CIFAR-10.1 release's 30; a model is left out only by "
        "the label-free rules (near chance on the original set; new-set agreements far below the agreement line). "
        "Left out: " + (", ".join(f"{r.new_test_set}: {r.excluded}" for r in default.itertuples() if r.excluded)
                        or "none") + ".",
        "Method: ALine-D (Baek et al. 2022) on probit scale, all model pairs; interval: bootstrap over models + "
        "the agreement points' residual spread + binomial noise of the measured accuracy. It does not cover a "
        "systematic offset between the agreement and accuracy lines. Other variants: `validation.csv`.",
        "Accuracy line: ordinary least squares on probit scale with the labels, each model left out of its own fit.",
        "Not validated here: the null and shifted sets of the new-test-set example (not on main when this was run).",
        "Regenerate: `python benchmarks/agreement_validation.py --out results/label-free`.",
    ]
    pivot = summary.pivot_table(index="new_test_set", columns=["method", "scale"], values="agreement_mae",
                                sort=False)
    variants = ["| new test set | " + " | ".join(f"{m} {s}" for m, s in pivot.columns) + " |",
                "|---|" + "---:|" * len(pivot.columns)]
    variants += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in r) + " |" for name, r in pivot.iterrows()]
    section = ag.agreement_report_section(default, notes=notes)
    section += "\nLabel-free MAE (points) by method and scale (same models):\n\n" + "\n".join(variants) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "validation.md", section)
    atomic_write_text(out / "validation.csv", summary.to_csv(index=False, float_format="%.4f"))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data",
                        help="the shared data folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("results/label-free"), help="default: %(default)s")
    args = parser.parse_args()
    summary = run(args.data, args.out)
    cols = ["new_test_set", "method", "scale", "n_models", "r2", "agreement_mae", "agreement_max_error",
            "agreement_coverage", "accuracy_line_mae", "accuracy_line_max_error", "accuracy_line_coverage",
            "no_drop_mae"]
    print(summary[cols].round(2).to_string(index=False))


if __name__ == "__main__":
    main()
