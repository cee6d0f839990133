"""Command-line interface: a thin layer over the Python API.

Every subcommand parses its flags and calls one public function; the work (and its documentation) lives in
the library modules.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .io import DataError

# ---------------------------------------------------------------------------------------------- import


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import released predictions or published accuracy tables into a store")
    kinds = p.add_subparsers(dest="kind", required=True)

    q = kinds.add_parser("imagenetv2", help="the ImageNetV2 release (a clone of modestyachts/ImageNetV2)")
    q.add_argument("release", type=Path, help="root of the clone (holds data/datasets, data/predictions)")
    q.add_argument("--store", type=Path, required=True)
    q.set_defaults(func=_run_import)

    q = kinds.add_parser("cifar101", help="the CIFAR-10.1 release (a clone of modestyachts/CIFAR-10.1)")
    q.add_argument("release", type=Path)
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--cifar10-labels", type=Path, help="a .npy of the 10,000 official CIFAR-10 test labels")
    g.add_argument("--cifar10-root", type=Path, help="a folder holding cifar-10-batches-py/test_batch")
    q.add_argument("--store", type=Path, required=True)
    q.set_defaults(func=_run_import)

    q = kinds.add_parser("timm", help="timm's results-imagenet.csv (+ results-imagenetv2-matched-frequency.csv)")
    q.add_argument("imagenet_csv", type=Path)
    q.add_argument("matched_frequency_csv", type=Path, nargs="?")
    q.add_argument("--store", type=Path, required=True)
    q.set_defaults(func=_run_import)

    q = kinds.add_parser("testbed", help="imagenet-testbed's robustness_top1s.csv")
    q.add_argument("csv", type=Path)
    q.add_argument("--store", type=Path, required=True)
    q.set_defaults(func=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from . import importers

    if args.kind == "imagenetv2":
        report = importers.import_imagenetv2(args.release, args.store)
    elif args.kind == "cifar101":
        report = importers.import_cifar101(
            args.release, args.store, cifar10_labels=args.cifar10_labels, cifar10_root=args.cifar10_root
        )
    elif args.kind == "timm":
        report = importers.import_timm(args.imagenet_csv, args.matched_frequency_csv, args.store)
    else:
        report = importers.import_testbed(args.csv, args.store)
    print(report.summary())
    return 0


# --------------------------------------------------------------------------------------------- analyze


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="fits, tables, figures and a report for every source in a store")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--store", type=Path, help="a prediction store")
    g.add_argument("--accuracies", type=Path, help="an accuracies.csv written by reproduce/analyze")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_analyze)


def _run_analyze(args: argparse.Namespace) -> int:
    from . import report

    if args.store is not None:
        from .store import PredictionStore

        table = PredictionStore(args.store).accuracy_table()
    else:
        from .analysis import read_accuracies

        table = read_accuracies(args.accuracies)
    written = report.write_results(table, args.out, n_bootstrap=args.n_bootstrap, seed=args.seed)
    for path in written:
        print(path)
    return 0


# ------------------------------------------------------------------------------------------- reproduce


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="import the releases, analyze, write the results folder; with no release given, rebuild the "
        "figures and REPORT.md from the committed results/accuracies.csv",
    )
    env = os.environ.get
    p.add_argument("--imagenetv2-release", type=Path, default=env("GENERALIZATION_IMAGENETV2_RELEASE"))
    p.add_argument("--cifar101-release", type=Path, default=env("GENERALIZATION_CIFAR101_RELEASE"))
    p.add_argument("--cifar10-labels", type=Path, default=env("GENERALIZATION_CIFAR10_LABELS"))
    p.add_argument("--cifar10-root", type=Path, default=env("GENERALIZATION_CIFAR10_ROOT"))
    p.add_argument("--timm-results", type=Path, nargs="+", default=None,
                   help="timm's results-imagenet.csv [results-imagenetv2-matched-frequency.csv]")
    p.add_argument("--testbed-results", type=Path, default=None, help="imagenet-testbed's robustness_top1s.csv")
    p.add_argument("--store", type=Path, default=None, help="store to import into (default: OUT/store)")
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from . import report

    written = report.reproduce(
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
    )
    for path in written:
        print(path)
    return 0


# ------------------------------------------------------------------- evaluator (issue: batch evaluator)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """`evaluate`, `list-models`, `list-datasets`, `verify-data` (filled in by the evaluator)."""


# --------------------------------------------------------------------------- sampler (issue: sampler)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    """`sample <strategy>`, `tasks`, `near-duplicates`, ... (filled in by the sampler)."""


# ------------------------------------------------------------- near-duplicates (issue: sampler, part 5)


def _add_near_duplicates(sub: argparse._SubParsersAction) -> None:
    """`near-duplicates ...` (filled in with the near-duplicate detector)."""


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="generalization",
        description="Build new test sets, evaluate models on them, and measure the accuracy gap.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_import, _add_analyze, _add_reproduce, _add_evaluate, _add_sample, _add_near_duplicates):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, FileExistsError, FileNotFoundError) as e:
        print(f"generalization: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("generalization: interrupted; finished records are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
