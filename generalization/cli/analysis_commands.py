"""The analysis subcommands of the ``generalization`` command: ``analyze``, ``gaps``, ``reproduce``,
``selection-frequency-report`` and ``predict-unlabeled``, with the helpers that read and write the declared
test-set pairs (moved out of :mod:`generalization.cli`, which builds the parser from these modules and runs
``main``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..files import DataError
from .arguments import non_negative_int, out_dir, positive_int


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="fits, tables, figures and a report for every source in one or more stores / accuracy tables",
    )
    p.add_argument("--store", type=Path, action="append", default=[],
                   help="a prediction store (repeatable: e.g. the releases' store and your evaluations' store)")
    p.add_argument("--accuracies", type=Path, action="append", default=[],
                   help="an accuracies.csv written by reproduce/analyze (repeatable)")
    p.add_argument("--out", type=out_dir, required=True, help="results folder (tables, figures, REPORT.md)")
    _add_fit_options(p)
    p.add_argument("--no-verify", action="store_true",
                   help="skip re-deriving every record's counts from its predictions and labels (verify-store); "
                        "faster, but a tampered store goes unnoticed")
    p.add_argument("--votes", type=Path, help="an N x C vote-count .npy (CIFAR-10H style) for --votes-test-set: "
                   "also write accuracy by selection-frequency bin to OUT/selection-frequency (needs --store)")
    p.add_argument("--votes-test-set", default="cifar10-test", help="the test set the votes belong to")
    p.add_argument("--html", action="store_true",
                   help="also write OUT/explorer.html, an interactive explorer in one self-contained file")
    p.add_argument("--predictions-parquet", action="store_true",
                   help="also write OUT/predictions.parquet: every stored per-image prediction, keyed by image id")
    p.set_defaults(func=_run_analyze)


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fit-models", default="paper", metavar="SET",
                   help="the models the trends are fitted on: paper (default: ImageNetV2 release CNNs without the "
                   "Fisher vectors; CIFAR-10.1 release models), release, all, a comma-separated list of model "
                   "names, or a file with one name per line")  # fmt: skip
    p.add_argument("--n-bootstrap", type=positive_int, default=100_000, help="bootstrap resamples (as the paper)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap")


def _run_analyze(args: argparse.Namespace) -> int:
    from ..analysis import report
    from ..analysis.trends import combine_accuracy_tables
    from ..store.records import PredictionStore

    if not args.store and not args.accuracies:
        raise DataError("analyze needs at least one --store or --accuracies")
    for s in args.store:
        if not (s / "store.json").is_file():
            raise DataError(f"{s}: not a prediction store (no store.json)")
    tables = [_declared_table(PredictionStore(s), verify=not args.no_verify) for s in args.store]
    tables += [_declared_accuracies(a) for a in args.accuracies]
    table = combine_accuracy_tables(tables, names=[str(p) for p in [*args.store, *args.accuracies]])
    if getattr(args, "votes", None) is not None and not args.store:
        raise DataError("--votes needs --store (per-image predictions), not --accuracies")
    written = report.write_results(table, args.out, n_bootstrap=args.n_bootstrap, seed=args.seed,
                                   model_set=args.fit_models, html=args.html)
    from ..analysis import export

    written += export.write_exports(table, args.out, stores=args.store, predictions=args.predictions_parquet)
    if getattr(args, "votes", None) is not None:
        from ..analysis import selection_frequency as sf

        written += sf.write_accuracy_by_frequency_from_store(args.store[0], args.votes_test_set, args.votes,
                                                            args.out / "selection-frequency")
    declared = _write_declared(table, args.out)
    for path in written + declared:
        print(path)
    return 0


def _declared_table(store, verify: bool = True):
    """A store's accuracy table, after declaring the new test sets its records were evaluated on (sampler
    manifests name their original, so analyze pairs them like the built-in ones)."""
    from .. import test_sets

    test_sets.declare_from_records(store.records())
    return store.accuracy_table(verify=verify)


def _declared_accuracies(path: Path):
    """An accuracies.csv, after declaring the test sets listed in the test_sets.json beside it (if any)."""
    from .. import test_sets
    from ..analysis.trends import read_accuracies
    from ..files import load_json

    beside = path.parent / "test_sets.json"
    if beside.is_file():
        for name, t in sorted(load_json(beside).items()):
            test_sets.declare(name, original=t.get("original"), num_classes=int(t["num_classes"]),
                              num_images=int(t["num_images"]), title=t.get("title"), where=str(beside))
    return read_accuracies(path)


def _write_declared(table, out: Path) -> list[Path]:
    """OUT/test_sets.json: the declared test sets of the table (so `analyze --accuracies` can pair them)."""
    from .. import test_sets
    from ..files import atomic_write_json

    present = set(table["test_set"])
    d = {n: {"original": t.original, "num_classes": t.num_classes, "num_images": t.num_images, "title": t.title}
         for n, t in test_sets.declared().items() if n in present}
    return [atomic_write_json(out / "test_sets.json", d)] if d else []


def _add_gaps(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gaps", help="one row per new test set and model: original and new top-1 and the gap "
                       "with its 95 %% interval (Newcombe), as CSV")
    p.add_argument("--store", type=Path, action="append", required=True, help="a prediction store (repeatable)")
    p.add_argument("--variant", action="append", default=[], metavar="TEST_SET=LABEL",
                   help="keep this new test set and call it LABEL in the variant column (repeatable; default: "
                   "every new test set whose original is evaluated, labelled by its name)")
    p.add_argument("--source", action="append", default=None,
                   help="keep only this source, e.g. evaluate (repeatable; default: all)")
    p.add_argument("--out", type=Path, required=True, help="the CSV to write")
    p.set_defaults(func=_run_gaps)


def _run_gaps(args: argparse.Namespace) -> int:
    from ..analysis.gaps import gap_table
    from ..analysis.trends import combine_accuracy_tables
    from ..files import atomic_write_text, csv_text
    from ..store.records import PredictionStore

    variants = None
    if args.variant:
        variants = {}
        for item in args.variant:
            name, sep, label = item.partition("=")
            if not sep or not name or not label:
                raise DataError(f"--variant {item!r}: expected TEST_SET=LABEL")
            variants[name] = label
    tables = [_declared_table(PredictionStore(s)) for s in args.store]
    table = combine_accuracy_tables(tables, names=[str(s) for s in args.store])
    gaps = gap_table(table, variants=variants, sources=args.source)
    atomic_write_text(args.out, csv_text(gaps))
    print(gaps.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(args.out)
    return 0


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="import the releases, analyze, write the results folder; with no release given, rebuild the "
        "figures and REPORT.md from the committed results/accuracies.csv",
    )
    env = os.environ.get
    p.add_argument("--imagenetv2-release", type=Path, default=env("GENERALIZATION_IMAGENETV2_RELEASE"),
                   help="clone of modestyachts/ImageNetV2 ($GENERALIZATION_IMAGENETV2_RELEASE)")
    p.add_argument("--cifar101-release", type=Path, default=env("GENERALIZATION_CIFAR101_RELEASE"),
                   help="clone of modestyachts/CIFAR-10.1 ($GENERALIZATION_CIFAR101_RELEASE)")
    p.add_argument("--cifar10-labels", type=Path, default=env("GENERALIZATION_CIFAR10_LABELS"),
                   help="a .npy of the 10,000 CIFAR-10 test labels ($GENERALIZATION_CIFAR10_LABELS)")
    p.add_argument("--cifar10-root", type=Path, default=env("GENERALIZATION_CIFAR10_ROOT"),
                   help="a folder holding cifar-10-batches-py/test_batch ($GENERALIZATION_CIFAR10_ROOT)")
    p.add_argument("--timm-results", type=Path, nargs="+", default=None,
                   help="any of timm's result tables (results-imagenet.csv, results-imagenet-a.csv, ...)")
    p.add_argument("--testbed-results", type=Path, default=None, help="imagenet-testbed's robustness_top1s.csv")
    p.add_argument("--store", type=out_dir, default=None,
                   help="a store to import into and keep (None: a temporary one)")
    p.add_argument("--out", type=out_dir, default=Path("results"), help="results folder")
    p.add_argument("--no-repair", dest="repair", action="store_false",
                   help="import ImageNetV2 arrays whose columns are out of rank order as released (default: repair)")
    _add_fit_options(p)
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from ..workflows import reproduce

    given = {"ImageNetV2 release": args.imagenetv2_release, "CIFAR-10.1 release": args.cifar101_release,
             "timm results": args.timm_results, "testbed results": args.testbed_results}
    used = [f"{k} {v if not isinstance(v, list) else ' '.join(map(str, v))}" for k, v in given.items() if v]
    if used:
        print("rebuilding from: " + "; ".join(used))
    else:
        print(f"no release given: rebuilt from {args.out / 'accuracies.csv'}")

    written = reproduce(
        out=args.out,
        imagenetv2_release=args.imagenetv2_release,
        cifar101_release=args.cifar101_release,
        cifar10_labels=args.cifar10_labels,
        cifar10_root=args.cifar10_root,
        timm_results=args.timm_results,
        testbed_results=args.testbed_results,
        store=args.store,
        n_bootstrap=args.n_bootstrap,
        seed=args.seed,
        model_set=args.fit_models,
        repair=args.repair,
    )
    for path in written:
        print(path)
    return 0


def _add_selection_frequency(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selection-frequency-report",
                       help="accuracy by selection frequency, frequency-shifted resamples and the estimation bias "
                            "on CIFAR-10H votes with the 30 CIFAR-10.1 release models")
    env = os.environ.get
    p.add_argument("--votes", type=Path, required=True, help="cifar10h-counts.npy (10,000 x 10 vote counts)")
    p.add_argument("--cifar101-release", type=Path, default=env("GENERALIZATION_CIFAR101_RELEASE"), required=
                   env("GENERALIZATION_CIFAR101_RELEASE") is None,
                   help="clone of modestyachts/CIFAR-10.1 ($GENERALIZATION_CIFAR101_RELEASE)")
    p.add_argument("--cifar10-labels", type=Path, default=env("GENERALIZATION_CIFAR10_LABELS"), required=
                   env("GENERALIZATION_CIFAR10_LABELS") is None,
                   help="a .npy of the 10,000 CIFAR-10 test labels ($GENERALIZATION_CIFAR10_LABELS)")
    p.add_argument("--store", type=out_dir, default=None, help="store to import into (None: a temporary one)")
    p.add_argument("--per-class", type=positive_int, default=200, help="resample size per class")
    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2, 3, 4],
                   help="seeds of the frequency-shifted resamples")
    p.add_argument("--n-bootstrap", type=positive_int, default=200, help="bootstrap resamples for the intervals")
    p.add_argument("--out", type=out_dir, default=Path("results/selection-frequency"), help="output folder")
    p.set_defaults(func=_run_selection_frequency_report)


def _run_selection_frequency_report(args: argparse.Namespace) -> int:
    from ..workflows.selection_frequency_study import write_report

    written = write_report(args.votes, args.cifar101_release, args.cifar10_labels, args.out, store=args.store,
                           per_class=args.per_class, seeds=args.seeds, n_bootstrap=args.n_bootstrap)
    for path in written:
        print(path)
    return 0


def _add_predict_unlabeled(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict-unlabeled",
        help="predict each model's top-1 on a new test set without its labels (agreement on the line)",
        description="Pairwise top-1 agreement of the models on both sets (all pairs up to --max-pairs, else a "
                    "seeded sample), the agreement line, and each model's predicted new-set top-1 with an "
                    "interval (Baek et al. 2022). The new set's labels are never read for the prediction. "
                    "Writes OUT/predictions.csv, OUT/agreement_pairs.csv, OUT/agreement_fit.json.",
    )
    p.add_argument("--store", type=Path, required=True, help="store with the original set's labels and predictions")
    p.add_argument("--original", default=None,
                   help="original test set (default: the one --new replicates if it is a known test set, "
                        "else imagenet-val)")
    p.add_argument("--new", required=True, help="new test set: its records' predictions are read from the store")
    p.add_argument("--new-predictions", type=Path, default=None,
                   help="folder of <model>.npy predictions of the new set, for a set the store cannot hold "
                        "(no labels yet); default: the store's records of --new")
    p.add_argument("--models", nargs="+", default=None, help="models to use (default: all with predictions on both)")
    p.add_argument("--source", nargs="+", default=None, help="only records of these sources (default: all)")
    p.add_argument("--method", choices=["aline-d", "aline-s"], default="aline-d", help="default: %(default)s")
    p.add_argument("--scale", choices=["probit", "logit"], default="probit", help="default: %(default)s")
    p.add_argument("--max-pairs", type=int, default=5000, help="bound on model pairs (default: %(default)s)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="pair sample and bootstrap seed (default: %(default)s)")
    p.add_argument("--offset-sd", type=float, default=None,
                   help="SD, on the scale, of a systematic offset between the agreement and accuracy lines added to "
                        "the interval (default: the offset seen on five labelled shifts, docs/label_free.md; 0: "
                        "model-to-model uncertainty only)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_run_predict_unlabeled)


def _run_predict_unlabeled(args: argparse.Namespace) -> int:
    from ..analysis.agreement import predict_unlabeled, write_predictions

    if args.max_pairs < 1:
        raise DataError(f"--max-pairs must be positive, got {args.max_pairs}")
    if not 0 < args.level < 1:
        raise DataError(f"--level must be between 0 and 1, got {args.level}")
    if args.offset_sd is not None and not args.offset_sd >= 0:
        raise DataError(f"--offset-sd must be >= 0, got {args.offset_sd}")
    from ..test_sets import original_of

    original = args.original or original_of(args.new) or "imagenet-val"
    df = predict_unlabeled(args.store, original, args.new, models=args.models, sources=args.source,
                           new_predictions=args.new_predictions, method=args.method, scale=args.scale,
                           max_pairs=args.max_pairs, level=args.level, seed=args.seed, offset_sd=args.offset_sd)
    result = df.attrs["result"]
    fit = result.fit
    print(f"{fit['n_models']} models, {fit['n_pairs']} pairs ({fit['pairs']}); agreement line on {fit['scale']} "
          f"scale: slope {fit['slope']:.3f}, intercept {fit['intercept']:.3f}, R^2 {fit['r2']:.4f}")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for path in write_predictions(df, args.out):
        print(path)
    return 0
