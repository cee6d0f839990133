"""The prediction-store subcommands of the ``generalization`` command: ``import`` (published tables and own
predictions into a store) and ``verify-store`` (moved out of :mod:`generalization.cli`, which builds the
parser from these modules and runs ``main``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..files import DataError
from .arguments import out_dir


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import released predictions or published accuracy tables into a store")
    kinds = p.add_subparsers(dest="kind", required=True)

    q = kinds.add_parser("imagenetv2", help="the ImageNetV2 release (a clone of modestyachts/ImageNetV2)")
    q.add_argument("release", type=Path, help="root of the clone (holds data/datasets, data/predictions)")
    q.add_argument("--store", type=out_dir, required=True, help="the prediction store to import into (created if new)")
    q.add_argument("--no-repair", dest="repair", action="store_false",
                   help="store arrays whose columns are out of rank order as released (default: repair them)")
    q.set_defaults(func=_run_import)

    q = kinds.add_parser("cifar101", help="the CIFAR-10.1 release (a clone of modestyachts/CIFAR-10.1)")
    q.add_argument("release", type=Path, help="root of the clone (holds datasets/, model_predictions/)")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--cifar10-labels", type=Path, help="a .npy of the 10,000 official CIFAR-10 test labels")
    g.add_argument("--cifar10-root", type=Path, help="a folder holding cifar-10-batches-py/test_batch")
    q.add_argument("--store", type=out_dir, required=True, help="the prediction store to import into (created if new)")
    q.set_defaults(func=_run_import)

    q = kinds.add_parser("timm", help="any of timm's result tables (results-imagenet.csv, -imagenet-a.csv, ...) "
                         "and model_metadata-in1k.csv; the test set comes from the file name")
    q.add_argument("files", type=Path, nargs="+", metavar="FILE", help="result tables and/or model_metadata-in1k.csv")
    q.add_argument("--store", type=out_dir, required=True, help="the prediction store to import into (created if new)")
    q.add_argument("--overwrite", action="store_true", help="replace stored rows that differ")
    q.set_defaults(func=_run_import)

    q = kinds.add_parser("testbed", help="imagenet-testbed's robustness_top1s.csv (every column by default)")
    q.add_argument("csv", type=Path, help="imagenet-testbed's robustness_top1s.csv")
    q.add_argument("--store", type=out_dir, required=True, help="the prediction store to import into (created if new)")
    q.add_argument("--columns", action="append", default=None, metavar="COL[,COL...]",
                   help="import only these testbed columns (evaluation settings), e.g. imagenet-a,val")
    q.add_argument("--model-types", type=Path, default=None,
                   help="the testbed's plotting/model_types.py (read as data) instead of the shipped copy")
    q.add_argument("--overwrite", action="store_true", help="replace stored rows that differ")
    q.set_defaults(func=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from ..store import importers

    if args.kind == "imagenetv2":
        report = importers.import_imagenetv2(args.release, args.store, repair=args.repair)
    elif args.kind == "cifar101":
        report = importers.import_cifar101(
            args.release, args.store, cifar10_labels=args.cifar10_labels, cifar10_root=args.cifar10_root
        )
    elif args.kind == "timm":
        report = importers.import_timm_tables(args.files, args.store, overwrite=args.overwrite)
    else:
        cols = None if args.columns is None else [c.strip() for v in args.columns for c in v.split(",") if c.strip()]
        report = importers.import_testbed(args.csv, args.store, columns=cols, model_types=args.model_types,
                                          overwrite=args.overwrite)  # fmt: skip
    print(report.summary())
    return 0


def _add_verify_store(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify-store",
        help="check stores: every record well formed and its counts re-derived from its predictions and labels",
    )
    p.add_argument("stores", type=Path, nargs="+", help="prediction store folder(s)")
    p.set_defaults(func=_run_verify_store)


def _run_verify_store(args: argparse.Namespace) -> int:
    from ..store.records import PredictionStore

    bad = []
    for s in args.stores:
        report = PredictionStore(s).verify(raise_on_problem=False)
        (print if report.ok else bad.append)(report.summary())
    if bad:
        raise DataError("; ".join(bad))
