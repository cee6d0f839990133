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

from .files import DataError

# ------------------------------------------------------------------------------------ argument types
# Each checks one argument where it enters and says what is wrong in argparse's one-line error (exit 2).


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def _float_in(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be in {low:g}..{high:g}, got {text}")
        return value

    parse.__name__ = f"number in {low:g}..{high:g}"
    return parse


fraction = _float_in(0.0, 1.0)


def device(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps (checked for availability when the run starts)."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def class_threshold(text: str) -> tuple[str, float]:
    """CLASS=TAU with TAU in 0..1."""
    cls, sep, tau = text.rpartition("=")
    if not sep or not cls:
        raise argparse.ArgumentTypeError(f"expected CLASS=TAU (e.g. n01440764=0.6), got {text!r}")
    try:
        return cls, fraction(tau)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: TAU {e}") from None


def url_template(text: str) -> str:
    """A str.format template whose only field is {image_id}."""
    from .sampler.tasks import check_url_template

    try:
        return check_url_template(text)
    except DataError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def out_file(text: str) -> Path:
    """A file to write: not an existing folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return path


def out_dir(text: str) -> Path:
    """A folder to write into: not an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return path

# ---------------------------------------------------------------------------------------------- import


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
    from .store import importers

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


# --------------------------------------------------------------------------------------------- analyze


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
    from .analysis import report
    from .analysis.trends import combine_accuracy_tables
    from .store.records import PredictionStore

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
    from .analysis import export

    written += export.write_exports(table, args.out, stores=args.store, predictions=args.predictions_parquet)
    if getattr(args, "votes", None) is not None:
        from .analysis import selection_frequency_report as sfr

        written += sfr.write_accuracy_by_frequency_from_store(args.store[0], args.votes_test_set, args.votes,
                                                             args.out / "selection-frequency")
    declared = _write_declared(table, args.out)
    for path in written + declared:
        print(path)
    return 0


def _add_verify_store(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify-store",
        help="check stores: every record well formed and its counts re-derived from its predictions and labels",
    )
    p.add_argument("stores", type=Path, nargs="+", help="prediction store folder(s)")
    p.set_defaults(func=_run_verify_store)


def _run_verify_store(args: argparse.Namespace) -> int:
    from .store.records import PredictionStore

    bad = []
    for s in args.stores:
        report = PredictionStore(s).verify(raise_on_problem=False)
        (print if report.ok else bad.append)(report.summary())
    if bad:
        raise DataError("; ".join(bad))


def _declared_table(store, verify: bool = True):
    """A store's accuracy table, after declaring the new test sets its records were evaluated on (sampler
    manifests name their original, so analyze pairs them like the built-in ones)."""
    from . import test_sets

    test_sets.declare_from_records(store.records())
    return store.accuracy_table(verify=verify)


def _declared_accuracies(path: Path):
    """An accuracies.csv, after declaring the test sets listed in the test_sets.json beside it (if any)."""
    from . import test_sets
    from .analysis.trends import read_accuracies
    from .files import load_json

    beside = path.parent / "test_sets.json"
    if beside.is_file():
        for name, t in sorted(load_json(beside).items()):
            test_sets.declare(name, original=t.get("original"), num_classes=int(t["num_classes"]),
                              num_images=int(t["num_images"]), title=t.get("title"), where=str(beside))
    return read_accuracies(path)


def _write_declared(table, out: Path) -> list[Path]:
    """OUT/test_sets.json: the declared test sets of the table (so `analyze --accuracies` can pair them)."""
    from . import test_sets
    from .files import atomic_write_json

    present = set(table["test_set"])
    d = {n: {"original": t.original, "num_classes": t.num_classes, "num_images": t.num_images, "title": t.title}
         for n, t in test_sets.declared().items() if n in present}
    return [atomic_write_json(out / "test_sets.json", d)] if d else []


# ------------------------------------------------------------------------------------------------ gaps


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
    from .analysis.gaps import gap_table
    from .analysis.trends import combine_accuracy_tables
    from .files import atomic_write_text
    from .store.records import PredictionStore

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
    atomic_write_text(args.out, gaps.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    print(gaps.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(args.out)
    return 0


# ------------------------------------------------------------------------------------------- reproduce


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
    from .analysis import report

    given = {"ImageNetV2 release": args.imagenetv2_release, "CIFAR-10.1 release": args.cifar101_release,
             "timm results": args.timm_results, "testbed results": args.testbed_results}
    used = [f"{k} {v if not isinstance(v, list) else ' '.join(map(str, v))}" for k, v in given.items() if v]
    if used:
        print("rebuilding from: " + "; ".join(used))
    else:
        print(f"no release given: rebuilt from {args.out / 'accuracies.csv'}")

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
        model_set=args.fit_models,
        repair=args.repair,
    )
    for path in written:
        print(path)
    return 0


# ------------------------------------------------------------------- evaluator (issue: batch evaluator)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    """`evaluate`, `list-models`, `list-datasets`, `verify-data` (see docs/evaluator.md)."""
    p = sub.add_parser("evaluate", help="run models on test sets; write per-image top-5 and accuracies to a store")
    p.add_argument("--model", action="append", required=True, help="a registry name (list-models), module:callable "
                   "(the working directory is on the import path) or path/to/file.py:callable")
    p.add_argument("--name", action="append", default=None, help="display name of the model in the store and "
                   "tables, one per --model in order (default: the --model string)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch and decoding (default: the "
                   "CPUs this process may use). On a shared machine give your share: oversubscribed threads "
                   "collapse throughput (docs/evaluator.md)")
    p.add_argument("--dataset", action="append", required=True, help="a test set (list-datasets) or a manifest .json")
    p.add_argument("--data-root", type=Path, required=True, help="folder holding the test set(s)")
    p.add_argument("--out", type=out_dir, required=True, help="the prediction store's root")
    p.add_argument("--release", type=Path, default=os.environ.get("GENERALIZATION_IMAGENETV2_RELEASE") or None,
                   help="ImageNetV2 release clone (or dataset JSON): image order, ids and labels of ImageNet sets "
                   "(default: $GENERALIZATION_IMAGENETV2_RELEASE)")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass")
    p.add_argument("--precision", choices=["fp32", "bf16", "both"], default="fp32",
                   help="both: run fp32 and bf16 and report their top-1 agreement")
    p.add_argument("--num-workers", type=non_negative_int, default=0,
                   help="decoding worker processes (0: decode in threads, one per torch thread)")
    p.add_argument("--skip-bad-images", action="store_true", help="skip and count unreadable images")
    p.add_argument("--strict-count", action="store_true", help="fail when an image count differs from the published")
    p.add_argument("--overwrite", action="store_true", help="recompute pairs already in the store")
    p.set_defaults(func=_run_evaluate)

    p = sub.add_parser("list-models", help="the model registry")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'torchvision/resnet*'")
    p.add_argument("--timm", action="store_true", help="include timm's pretrained models")
    p.add_argument("--details", action="store_true", help="show weights and preprocessing (builds no model)")
    p.set_defaults(func=_run_list_models)

    p = sub.add_parser("list-datasets", help="the test-set registry")
    p.set_defaults(func=_run_list_datasets)

    p = sub.add_parser("verify-data", help="check a local copy of a test set against its manifest")
    p.add_argument("--dataset", required=True, help="a test set (list-datasets) or a manifest .json")
    p.add_argument("--data-root", type=Path, required=True, help="folder holding the test set")
    p.add_argument("--release", type=Path, default=os.environ.get("GENERALIZATION_IMAGENETV2_RELEASE") or None,
                   help="ImageNetV2 release clone (or dataset JSON): image order, ids and labels of ImageNet sets "
                   "(default: $GENERALIZATION_IMAGENETV2_RELEASE)")
    p.add_argument("--devkit", type=Path, default=None, help="ILSVRC2012 devkit (labels of a flat imagenet-val)")
    p.set_defaults(func=_run_verify_data)


def _run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .evaluator import models, runner
    from .evaluator.communication import DistributedError, Launch

    affinity = getattr(os, "sched_getaffinity", None)
    threads = args.threads if args.threads is not None else (len(affinity(0)) if affinity else os.cpu_count() or 1)
    if threads < 1:
        raise DataError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    # look up every model and fetch its weights before any image is decoded
    specs = models.resolve_models(args.model, args.name)
    # under torchrun (WORLD_SIZE > 1) the images are sharded across ranks; otherwise one process does it all
    launch = Launch.from_environ(os.environ)
    settings = runner.EvalSettings(
        out=args.out, data_root=args.data_root, device=args.device, batch_size=args.batch_size,
        precision=args.precision, num_workers=args.num_workers, skip_bad_images=args.skip_bad_images,
        strict_count=args.strict_count, release=args.release, overwrite=args.overwrite,
        keep_freed_memory=os.environ.get("GENERALIZATION_MALLOC", "").lower() != "system")  # fmt: skip
    try:
        table = runner.run_evaluation(specs, args.dataset, settings, launch=launch)
    except DistributedError as e:
        print(f"generalization: error: {e}", file=sys.stderr)
        return 1
    if launch.rank != 0:
        return 0
    if len(table):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.precision == "both":
        print(runner.precision_agreement(args.out).to_string(index=False))
    return 0


def _run_list_models(args: argparse.Namespace) -> int:
    from .evaluator import models

    for name in models.list_models(args.pattern, include_timm=args.timm):
        if args.details:
            d = models.model_spec(name).describe()
            print(name, {k: v for k, v in d.items() if k != "model"})
        else:
            print(name)
    return 0


def _run_list_datasets(args: argparse.Namespace) -> int:
    from .evaluator import datasets

    print(datasets.list_datasets().to_string(index=False))
    return 0


def _run_verify_data(args: argparse.Namespace) -> int:
    from .evaluator import datasets

    report = datasets.verify_data(args.dataset, args.data_root, release=args.release, devkit=args.devkit)
    print(report.summary())
    return 0 if report.ok else 1


# --------------------------------------------------------------------------- sampler (issue: sampler)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    """`selection-frequency`, `tasks` and `sample <strategy>` (the new-test-set sampler; docs/sampler.md)."""
    p = sub.add_parser("selection-frequency",
                       help="selection frequency per (image, class) from annotations or a vote-count matrix")
    p.add_argument("annotations", type=Path, nargs="?",
                   help="long-format table, MTurk batch results (.csv) or task-page records (.json/.jsonl)")
    p.add_argument("--format", choices=["auto", "long", "mturk", "records"], default="auto",
                   help="the annotation file's format (auto: from its columns / extension)")
    p.add_argument("--tasks", type=Path, help="tasks.csv from `generalization tasks` (control roles)")
    p.add_argument("--candidates", type=Path, help="candidate table: images not in it (or the tasks) are reported")
    p.add_argument("--min-annotations", type=non_negative_int, default=0,
                   help="leave out (image, class) pairs with fewer annotations")
    p.add_argument("--min-control-accuracy", type=fraction, default=None,
                   help="drop workers whose control accuracy is below this (needs control roles)")
    p.add_argument("--min-controls", type=positive_int, default=6,
                   help="judge only workers with this many control answers")
    p.add_argument("--counts", type=Path, help="instead of annotations: an N x C vote-count .npy (CIFAR-10H style)")
    p.add_argument("--labels", type=Path, help="with --counts: the N labels (.npy)")
    p.add_argument("--classes", help="with --counts: class names in label order (comma-separated, a .json list or a "
                   "text file, one per line); the class column then holds names (default: label indices)")
    p.add_argument("--image-folder", type=Path, help="with --counts and --classes: images laid out as "
                   "FOLDER/<class>/<files>, row order within each class (CIFAR-10 exports); image_id = "
                   "<class>/<file>, the id near-duplicates and evaluate use (default: row numbers)")
    p.add_argument("--rows", metavar="START:STOP", help="with --counts: keep only these rows, e.g. 1000: "
                   "(default: all)")
    p.add_argument("--out", type=out_file, required=True, help="CSV to write; problems and worker quality go beside it")
    p.set_defaults(func=_run_selection_frequency)

    p = sub.add_parser("tasks", help="48-image labeling tasks: MTurk batch CSV, template and standalone pages")
    p.add_argument("--candidates", type=Path, required=True, help="image_id, class (+ url or path)")
    p.add_argument("--positives", type=Path, required=True, help="original test images: image_id, class (+ url)")
    p.add_argument("--negatives", type=Path, help="negative-control images (default: --positives)")
    p.add_argument("--class-info", type=Path, help="class, name, definition")
    p.add_argument("--similar", type=Path, help="JSON {class: [similar classes]} for negative controls")
    p.add_argument("--url-template", type=url_template,
                   help="e.g. 'https://host/{image_id}.jpg' when the tables have no url")
    p.add_argument("--seed", type=non_negative_int, required=True, help="seed of the task order and control draws")
    p.add_argument("--no-pages", action="store_true", help="skip the standalone pages")
    p.add_argument("--out", type=out_dir, required=True,
                   help="output folder (pages a previous run left in it that this run does not make are removed)")
    p.set_defaults(func=_run_tasks)

    p = sub.add_parser("manifest", help="a manifest listing every image of a table as one test set (e.g. an "
                       "original test set laid out as files), to evaluate and pair like a sampled one")
    p.add_argument("--table", type=Path, required=True, help="image_id, class [, path] (CSV/JSONL/Parquet), in "
                   "the test set's order")
    p.add_argument("--name", required=True, help="the test set's name")
    p.add_argument("--replicates", metavar="TEST_SET", help="the test set it replicates (default: none, an "
                   "original test set)")
    p.add_argument("--classes", help="class names in label order (comma-separated, .json list or text file; "
                   "default: integer classes as indices, class names sorted)")
    p.add_argument("--title", help="display title (default: the name)")
    p.add_argument("--out", type=Path, required=True, help="the manifest .json to write")
    p.set_defaults(func=_run_manifest)

    p = sub.add_parser("sample", help="sample a new test set (manifest, exclusion report, audit figure)")
    strategies = p.add_subparsers(dest="strategy", required=True)

    def common(q: argparse.ArgumentParser, seed_required: bool = True) -> None:
        q.add_argument("--candidates", type=Path, required=True,
                       help="image_id, class, selection_frequency, num_annotations (CSV/JSONL/Parquet)")
        q.add_argument("--seed", type=non_negative_int, required=seed_required, help="seed of the random draws")
        q.add_argument("--min-annotations", type=non_negative_int, default=0,
                       help="leave out candidates with fewer annotations")
        q.add_argument("--exclusions", type=Path, help="image_id, reason [, class] (e.g. near_duplicate)")
        q.add_argument("--blacklist", type=Path, help="JSON list of image ids")
        q.add_argument("--carry-over", type=Path, help="a previous manifest: its still-usable images stay")
        q.add_argument("--no-shuffle", action="store_true", help="keep classes sorted instead of shuffling")
        q.add_argument("--no-figure", action="store_true", help="skip the audit figure")
        q.add_argument("--out", type=out_dir, required=True, help="folder for manifest.json and the reports")
        q.add_argument("--name", help="the new test set's name (manifest 'name'; evaluate and analyze use it; "
                       "default: the manifest file's name)")
        q.add_argument("--replicates", metavar="TEST_SET", help="the test set this one replicates (manifest "
                       "'original'; analyze pairs them), e.g. cifar10-test (default: none)")
        q.add_argument("--classes", help="the label space: class names in the models' output order (comma-"
                       "separated, a .json list or a text file); default: integer classes as indices, "
                       "class names sorted")
        q.add_argument("--title", help="display title for tables and figures (default: the name)")

    q = strategies.add_parser("matched-frequency", help="match the original's per-class frequency histogram")
    common(q)
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--original", type=Path, help="the original test images' frequency table")
    g.add_argument("--targets", type=Path, help="class, 0, 1, 2, 3, 4: target counts per bin")
    q.add_argument("--per-class", type=positive_int, help="images per class (with --original)")
    q.add_argument("--min-annotations-original", type=non_negative_int, default=0,
                   help="leave out original images with fewer annotations")
    q.add_argument("--upward-sampling", action="store_true", help="fill short bins from higher bins")
    q.add_argument("--shift", metavar="down:P", help="with --original: move a share P of each bin of the "
                   "original's histogram one bin down before matching (a selection-frequency shift; "
                   "default: none)")
    q.set_defaults(func=_run_sample)

    q = strategies.add_parser("threshold", help="k random images per class with frequency >= tau")
    common(q)
    q.add_argument("--per-class", type=positive_int, required=True, help="images per class")
    q.add_argument("--tau", type=fraction, required=True, help="selection-frequency threshold, 0..1")
    q.add_argument("--class-threshold", type=class_threshold, action="append", default=[], metavar="CLASS=TAU",
                   help="a class's own threshold (repeatable)")
    q.set_defaults(func=_run_sample)

    q = strategies.add_parser("top-images", help="the k highest-frequency images per class")
    common(q, seed_required=False)
    q.add_argument("--per-class", type=positive_int, required=True, help="images per class")
    q.set_defaults(func=_run_sample)

    q = strategies.add_parser("keyword-counts", help="CIFAR-10.1 style: per-keyword counts from a start list")
    q.add_argument("--cifar101", type=Path, help="a CIFAR-10.1 other_data folder (sets every input)")
    q.add_argument("--version", choices=["v4", "v6"], default="v6", help="with --cifar101: the version to rebuild")
    q.add_argument("--pools", type=Path, help="JSON {keyword: [ids]}")
    q.add_argument("--counts", type=Path, help="JSON {class: {keyword: count}}")
    q.add_argument("--start", type=Path, help="JSON {keyword: [ids]} of the previous version")
    q.add_argument("--blacklist", type=Path, help="JSON list of ids")
    q.add_argument("--seed", type=non_negative_int, required=True, help="seed of the random draws")
    q.add_argument("--compat-set-order", action="store_true",
                   help="build 'pool minus start' as list(set(pool) - set(start)) like the original "
                        "(interpreter-dependent; for comparison only)")
    q.add_argument("--compare-with", type=Path, help="a released JSON list of ids to compare position by position")
    q.add_argument("--out", type=out_dir, required=True, help="folder for manifest.json and the reports")
    q.set_defaults(func=_run_sample)


def _run_selection_frequency(args: argparse.Namespace) -> int:
    import pandas as pd

    from .files import atomic_write_text, csv_text, load_npy
    from .sampler import annotations as an

    out = args.out
    if args.counts is not None:
        if args.labels is None:
            raise DataError("--counts needs --labels")
        from .sampler import manifests

        counts, labels = load_npy(args.counts), load_npy(args.labels)
        classes = manifests.parse_classes(args.classes)
        ids = None
        if args.image_folder is not None:
            if classes is None:
                raise DataError("--image-folder needs --classes (the class folder names in label order)")
            ids = manifests.class_folder_ids(args.image_folder, labels, classes)
        table = an.selection_frequencies_from_counts(counts, labels, image_ids=ids)
        if classes is not None:
            if len(classes) != counts.shape[1]:
                raise DataError(f"--classes names {len(classes)} classes, {args.counts} has {counts.shape[1]}")
            table["class"] = [classes[int(c)] for c in table["class"]]
        table = table.iloc[manifests.parse_rows(args.rows, len(table))].reset_index(drop=True)
        atomic_write_text(out, csv_text(table))
        print(f"{out}: {len(table)} images, median selection frequency {table['selection_frequency'].median():.3f}")
        return 0
    if args.annotations is None:
        raise DataError("give an annotation file or --counts/--labels")
    tasks = an.check_task_table(an.read_table(args.tasks)) if args.tasks else None
    known = None
    if args.candidates is not None:
        known = set(an.load_candidates(args.candidates)["image_id"])
        if tasks is not None:
            known |= set(tasks["image_id"])
    ann, problems = an.load_annotations(args.annotations, format=args.format, tasks=tasks, known_images=known)
    quality = an.worker_quality(ann)
    excluded = []
    if args.min_control_accuracy is not None:
        excluded = an.workers_below(quality, args.min_control_accuracy, min_controls=args.min_controls)
    table = an.selection_frequencies(ann, min_annotations=args.min_annotations, exclude_workers=excluded)
    stem = out.with_suffix("")
    atomic_write_text(out, csv_text(table))
    atomic_write_text(f"{stem}.problems.csv", csv_text(problems))
    quality = quality.assign(excluded=quality["worker_id"].isin(excluded))
    atomic_write_text(f"{stem}.worker_quality.csv", csv_text(pd.DataFrame(quality)))
    print(f"{out}: {len(table)} (image, class) pairs from {len(ann)} annotations; {len(problems)} problem rows "
          f"({stem}.problems.csv); {len(excluded)} workers cut")
    return 0


def _run_manifest(args: argparse.Namespace) -> int:
    from .files import atomic_write_json
    from .sampler import annotations as an
    from .sampler import manifests

    table = an.read_table(args.table)
    m = manifests.table_manifest(table, name=args.name, original=args.replicates,
                                 classes=manifests.parse_classes(args.classes), title=args.title, source=args.table)
    atomic_write_json(args.out, m)
    print(f"{args.out}: {m['num_images']} images of {args.name}"
          + (f", replicating {args.replicates}" if args.replicates else ""))
    return 0


def _run_tasks(args: argparse.Namespace) -> int:
    from .files import load_json
    from .sampler import annotations as an
    from .sampler import tasks as tk

    neg = an.read_table(args.negatives) if args.negatives else None
    info = an.read_table(args.class_info) if args.class_info else None
    tasks = tk.make_tasks(an.load_candidates(args.candidates), an.read_table(args.positives), neg, seed=args.seed,
                          similar_classes=load_json(args.similar) if args.similar else None,
                          url_template=args.url_template)
    written = tk.write_tasks(tasks, args.out, info, pages=not args.no_pages)
    print(f"{tasks['task_id'].nunique()} tasks, {len(written)} files in {args.out}")
    return 0


def _json_map(path: Path, kind: str) -> dict:
    """A JSON object {key: [ids]} (kind "list") or {class: {keyword: count >= 0}} (kind "counts")."""
    from .files import load_json

    d = load_json(path)
    ok = isinstance(d, dict) and all(
        isinstance(v, list) if kind == "list" else isinstance(v, dict) and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v.values())
        for v in d.values()
    )
    if not ok:
        shape = "{keyword: [ids]}" if kind == "list" else "{class: {keyword: count >= 0}}"
        raise DataError(f"{path}: expected a JSON object {shape}")
    return d


def _read_targets(path: Path):
    """The target table of matched-frequency: class, then one column per bin 0..4 of whole counts >= 0."""
    import pandas as pd

    from .sampler import annotations as an

    t = an.read_table(path)
    bins = [c for c in t.columns if c not in ("class", "line")]
    if "class" not in t.columns or not bins or not all(c.strip().isdigit() for c in bins):
        raise DataError(f"{path}: expected columns class, 0, 1, 2, 3, 4 (target counts per bin)")
    if t["class"].duplicated().any():
        raise DataError(f"{path}: class {t['class'][t['class'].duplicated()].iloc[0]!r} is listed twice")
    counts = t[bins].apply(pd.to_numeric, errors="coerce")
    bad = counts.isna() | (counts < 0) | (counts != counts.round())
    if bad.any().any():
        line = int(t["line"][bad.any(axis=1)].iloc[0])
        raise DataError(f"{path}: line {line}: target counts must be whole numbers >= 0")
    counts.index = t["class"]
    counts.columns = [int(c) for c in bins]
    return counts.astype("int64")


def _run_sample(args: argparse.Namespace) -> int:
    from .sampler import annotations as an
    from .sampler import strategies as sm

    if args.strategy == "keyword-counts":
        if args.cifar101 is not None:
            kw = sm.cifar101_keyword_inputs(args.cifar101, args.version)
        else:
            if not (args.pools and args.counts and args.start):
                raise DataError("keyword-counts needs --cifar101 or all of --pools, --counts, --start")
            kw = {"pools": _json_map(args.pools, "list"), "counts": _json_map(args.counts, "counts"),
                  "start": _json_map(args.start, "list"),
                  "blacklist": sm.load_pairs_json(args.blacklist) if args.blacklist else [], "released": None}
        released = kw.pop("released")
        if args.compare_with is not None:
            released = sm.load_pairs_json(args.compare_with)
        result = sm.keyword_counts(**kw, seed=args.seed, compat_set_order=args.compat_set_order)
        written = sm.write_outputs(result, args.out)
        if released is not None:
            ids = [a for a, _ in result.manifest["image_filenames"]]
            n, diff = sm.count_matches(ids, released)
            print(f"matches the released list at {n} of {len(ids)} positions; differing positions: {diff}")
    else:
        cand = sm.read_frequency_table(args.candidates)
        common = {
            "exclusions": an.read_table(args.exclusions) if args.exclusions else None,
            "blacklist": [str(x) for x in sm.load_pairs_json(args.blacklist)] if args.blacklist else (),
            "carry_over": [(str(a), str(b)) for a, b in sm.read_manifest_pairs(args.carry_over)]
            if args.carry_over else None,
            "starting_from": args.carry_over.name if args.carry_over else None,
            "min_annotations": args.min_annotations,
            "shuffle": not args.no_shuffle,
        }
        if args.strategy == "matched-frequency":
            if args.targets is not None:
                targets = _read_targets(args.targets)
            else:
                if args.per_class is None:
                    raise DataError("--original needs --per-class")
                if args.shift is not None:
                    from .analysis.frequency_resampling import shifted_targets

                    try:
                        targets = shifted_targets(sm.read_frequency_table(args.original), args.per_class,
                                                  args.shift)
                    except ValueError as e:
                        raise DataError(f"--shift: {e}") from None
                else:
                    targets = sm.target_histograms(sm.read_frequency_table(args.original), args.per_class,
                                                   min_annotations=args.min_annotations_original)
            result = sm.matched_frequency(cand, targets, seed=args.seed, upward_sampling=args.upward_sampling,
                                          **common)
        elif args.strategy == "threshold":
            overrides = dict(args.class_threshold)
            result = sm.threshold(cand, args.per_class, args.tau, seed=args.seed, class_thresholds=overrides,
                                  **common)
        else:
            result = sm.top_images(cand, args.per_class, seed=args.seed, **common)
        from .sampler import manifests

        inputs = {"candidates": args.candidates, "exclusions": args.exclusions, "blacklist": args.blacklist,
                  "carry_over": args.carry_over}
        if args.strategy == "matched-frequency":
            inputs.update(original=args.original, targets=args.targets)
        manifests.declare(result.manifest, name=args.name, original=args.replicates,
                          classes=manifests.parse_classes(args.classes), title=args.title, candidates=cand,
                          inputs=inputs)
        written = sm.write_outputs(result, args.out, figure=not args.no_figure)
    m = result.manifest
    print(f"{m['sampling_function']}: {m['num_images']} of {m['target_size']} images, valid={m['is_valid']}, "
          f"{len(result.shortfalls)} shortfall rows, {len(result.exclusions)} exclusions")
    for path in written:
        print(path)
    return 0


# ------------------------------------------------------------- near-duplicates (issue: sampler, part 5)


def _add_near_duplicates(sub: argparse._SubParsersAction) -> None:
    """`near-duplicates ...`: see generalization.sampler.near_duplicates and docs/near_duplicates.md."""
    p = sub.add_parser(
        "near-duplicates",
        help="find candidates that duplicate the original test set or each other; write decisions and a review",
    )
    p.add_argument("--original", type=Path, required=True,
                   help="original test images: a folder of images, a uint8 .npy (N, H, W, 3) or a table "
                   "(image_id [, path]; CSV/JSONL/Parquet, files under --image-root)")
    p.add_argument("--candidates", type=Path, required=True,
                   help="candidate images: a folder, a .npy, or the candidate table (its image_id becomes the id "
                   "in decisions.csv and exclusions.csv)")
    p.add_argument("--image-root", type=Path, default=None,
                   help="the folder the tables' paths (or image ids) are relative to (default: each table's folder)")
    p.add_argument("--out", type=out_dir, required=True, help="output folder")
    p.add_argument("--metric", nargs="+", choices=["l2", "dssim", "cnn"], default=None,
                   help="distances to compute; a pair under the threshold of any of them is a duplicate link. "
                   "Default: the paper's protocol, l2 and dssim, plus cnn (reported; links only with a --threshold "
                   "cnn=...) when the --cnn-arch weights are already in $TORCH_HOME/hub/checkpoints")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                   help="link threshold (distance <= VALUE), repeatable, e.g. l2=460800 dssim=0.12 cnn=0.05; "
                        "'none' = report only. Defaults: l2 150 x H*W*3 (RMS difference ~12 grey levels), "
                        "dssim 0.12, cnn none")
    p.add_argument("--k", type=positive_int, default=5, help="neighbours per candidate and pool")
    p.add_argument("--shortlist", type=positive_int, default=10, help="l2 shortlist on which DSSIM is computed")
    p.add_argument("--size", type=positive_int, default=None, help="resize all images to SIZE x SIZE first")
    p.add_argument("--device", type=device, default="cpu", help="torch device: auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--cnn-arch", default="resnet18", help="torchvision backbone for --metric cnn")
    p.add_argument("--cnn-weights", default="DEFAULT",
                   help="DEFAULT, a weights-enum name (e.g. IMAGENET1K_V1), or 'random' (seeded, no download)")
    p.add_argument("--cnn-input-size", type=positive_int, default=None,
                   help="resize before the CNN (default: the weights' crop size; random weights: as is)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed for random CNN weights")
    p.add_argument("--review-pairs", type=non_negative_int, default=24, help="pairs per section of the review page")
    p.set_defaults(func=_run_near_duplicates)


def _run_near_duplicates(args: argparse.Namespace) -> int:
    import json

    from .sampler import near_duplicates

    thresholds = {}
    for item in args.threshold:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            thresholds[name.strip()] = None if value.strip().lower() == "none" else float(value)
        except ValueError:
            raise DataError(f"--threshold {item!r}: expected METRIC=NUMBER, e.g. l2=150000") from None
    written = near_duplicates.run_near_duplicates(
        args.original, args.candidates, args.out, metrics=args.metric, thresholds=thresholds, k=args.k,
        shortlist=args.shortlist, size=args.size, device=args.device, cnn_arch=args.cnn_arch,
        cnn_weights=args.cnn_weights, cnn_input_size=args.cnn_input_size, seed=args.seed,
        review_n=args.review_pairs, image_root=args.image_root,
    )
    summary = json.loads((args.out / "summary.json").read_text())
    print(f"{summary['candidates']} candidates: {summary['kept']} kept, {summary['excluded']} excluded "
          f"{summary['by_reason']}")
    for path in written:
        print(path)
    return 0


# ------------------------------------------------------------ selection frequency (issue: CIFAR-10H)


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
    from .analysis.selection_frequency_report import write_report

    written = write_report(args.votes, args.cifar101_release, args.cifar10_labels, args.out, store=args.store,
                           per_class=args.per_class, seeds=args.seeds, n_bootstrap=args.n_bootstrap)
    for path in written:
        print(path)
    return 0


# ------------------------------------------------------------- label-free prediction (issue 20: agreement)


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
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_run_predict_unlabeled)


def _run_predict_unlabeled(args: argparse.Namespace) -> int:
    from .analysis.agreement import predict_unlabeled, write_predictions

    if args.max_pairs < 1:
        raise DataError(f"--max-pairs must be positive, got {args.max_pairs}")
    if not 0 < args.level < 1:
        raise DataError(f"--level must be between 0 and 1, got {args.level}")
    from .test_sets import original_of

    original = args.original or original_of(args.new) or "imagenet-val"
    df = predict_unlabeled(args.store, original, args.new, models=args.models, sources=args.source,
                           new_predictions=args.new_predictions, method=args.method, scale=args.scale,
                           max_pairs=args.max_pairs, level=args.level, seed=args.seed)
    result = df.attrs["result"]
    fit = result.fit
    print(f"{fit['n_models']} models, {fit['n_pairs']} pairs ({fit['pairs']}); agreement line on {fit['scale']} "
          f"scale: slope {fit['slope']:.3f}, intercept {fit['intercept']:.3f}, R^2 {fit['r2']:.4f}")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for path in write_predictions(df, args.out):
        print(path)
    return 0


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="generalization",
        description="Build new test sets, evaluate models on them, and measure the accuracy gap.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_import, _add_analyze, _add_verify_store, _add_gaps, _add_reproduce, _add_evaluate, _add_sample,
                _add_near_duplicates, _add_selection_frequency, _add_predict_unlabeled):
        add(sub)
    _finish(parser)
    return parser


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line (and exit 2), with where to find the usage; subcommands inherit it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default (None: not set)."""


def _finish(parser: argparse.ArgumentParser) -> None:
    """For every (sub)command: show defaults in --help, and accept --debug after the command too."""
    parser.formatter_class = _HelpFormatter
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for child in action.choices.values():
            _finish(child)
    if not subs and parser.prog != "generalization":
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show the traceback of an unexpected error")


def _os_error_message(e: OSError, first: int = 0) -> str:
    """One line for a failed read or write, and what was and was not written before it (files written by
    this command: :func:`written_files` from index ``first``)."""
    from .files import written_files

    what = f"{e.filename}: {e.strerror or e}" if e.filename else str(e)
    written = written_files()[first:]
    if e.errno in (28, 30, 13, 122, 27):  # ENOSPC, EROFS, EACCES, EDQUOT, EFBIG: a write (or a lock) failed
        done = (
            f"{len(written)} file(s) were written completely before it (last: {written[-1]})"
            if written else "nothing was written"
        )
        return (f"{what}; that file was not written (no partial file is left, any earlier version is intact), "
                f"{done}; rerun after freeing space / fixing permissions: finished work is kept")
    return what + (f" ({len(written)} file(s) written completely before it)" if written else "")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``generalization`` command. Exit status: 0 done, 1 a check failed or an unexpected error,
    2 bad input or arguments (one line on stderr), 130 interrupted."""
    from .files import written_files
    from .store.records import RecordExistsError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    first = len(written_files())
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # e.g. `generalization list-models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("generalization: interrupted; finished records are kept", file=sys.stderr)
        return 130
    except (DataError, RecordExistsError, FileExistsError, FileNotFoundError, IsADirectoryError,
            NotADirectoryError) as e:
        if debug:
            raise
        msg = str(e) if isinstance(e, DataError | RecordExistsError) or not isinstance(e, OSError) \
            else _os_error_message(e, first)
        print(f"generalization: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except OSError as e:
        if debug:
            raise
        print(f"generalization: error: {_one_line(_os_error_message(e, first))}", file=sys.stderr)
        return 2
    except Exception as e:
        if debug:
            raise
        print(f"generalization: internal error: {type(e).__name__}: {_one_line(str(e))} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())
