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

    q = kinds.add_parser("timm", help="any of timm's result tables (results-imagenet.csv, -imagenet-a.csv, ...) "
                         "and model_metadata-in1k.csv; the test set comes from the file name")
    q.add_argument("files", type=Path, nargs="+", metavar="FILE")
    q.add_argument("--store", type=Path, required=True)
    q.add_argument("--overwrite", action="store_true", help="replace stored rows that differ")
    q.set_defaults(func=_run_import)

    q = kinds.add_parser("testbed", help="imagenet-testbed's robustness_top1s.csv (every column by default)")
    q.add_argument("csv", type=Path)
    q.add_argument("--store", type=Path, required=True)
    q.add_argument("--columns", action="append", default=None, metavar="COL[,COL...]",
                   help="import only these testbed columns (evaluation settings), e.g. imagenet-a,val")
    q.add_argument("--model-types", type=Path, default=None,
                   help="the testbed's plotting/model_types.py (read as data) instead of the shipped copy")
    q.add_argument("--overwrite", action="store_true", help="replace stored rows that differ")
    q.set_defaults(func=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from .store import importers

    if args.kind == "imagenetv2":
        report = importers.import_imagenetv2(args.release, args.store)
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
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--votes", type=Path, help="an N x C vote-count .npy (CIFAR-10H style) for --votes-test-set: "
                   "also write accuracy by selection-frequency bin to OUT/selection-frequency (needs --store)")
    p.add_argument("--votes-test-set", default="cifar10-test", help="the test set the votes belong to")
    p.add_argument("--predictions-parquet", action="store_true",
                   help="also write OUT/predictions.parquet: every stored per-image prediction, keyed by image id")
    p.set_defaults(func=_run_analyze)


def _run_analyze(args: argparse.Namespace) -> int:
    from .analysis import report
    from .analysis.trends import combine_accuracy_tables, read_accuracies
    from .store.records import PredictionStore

    if not args.store and not args.accuracies:
        raise DataError("analyze needs at least one --store or --accuracies")
    tables = [PredictionStore(s).accuracy_table() for s in args.store]
    tables += [read_accuracies(a) for a in args.accuracies]
    table = combine_accuracy_tables(tables, names=[str(p) for p in [*args.store, *args.accuracies]])
    if getattr(args, "votes", None) is not None and not args.store:
        raise DataError("--votes needs --store (per-image predictions), not --accuracies")
    written = report.write_results(table, args.out, n_bootstrap=args.n_bootstrap, seed=args.seed)
    from .analysis import export

    written += export.write_exports(table, args.out, stores=args.store, predictions=args.predictions_parquet)
    if getattr(args, "votes", None) is not None:
        from .analysis import selection_frequency as sf

        written += sf.write_accuracy_by_frequency_from_store(args.store[0], args.votes_test_set, args.votes,
                                                             args.out / "selection-frequency")
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
                   help="any of timm's result tables (results-imagenet.csv, results-imagenet-a.csv, ...)")
    p.add_argument("--testbed-results", type=Path, default=None, help="imagenet-testbed's robustness_top1s.csv")
    p.add_argument("--store", type=Path, default=None, help="a store to import into and keep (default: a temporary one)")
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from .analysis import report

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
    """`evaluate`, `list-models`, `list-datasets`, `verify-data` (see docs/evaluator.md)."""
    p = sub.add_parser("evaluate", help="run models on test sets; write per-image top-5 and accuracies to a store")
    p.add_argument("--model", action="append", required=True, help="a registry name (list-models) or module:callable")
    p.add_argument("--dataset", action="append", required=True, help="a test set (list-datasets) or a manifest .json")
    p.add_argument("--data-root", type=Path, required=True, help="folder holding the test set(s)")
    p.add_argument("--out", type=Path, required=True, help="the prediction store's root")
    p.add_argument("--release", type=Path, default=None,
                   help="ImageNetV2 release clone (or dataset JSON): image order, ids and labels of ImageNet sets")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", choices=["fp32", "bf16", "both"], default="fp32",
                   help="both: run fp32 and bf16 and report their top-1 agreement")
    p.add_argument("--num-workers", type=int, default=0, help="decoding worker processes (default 0: decode in threads, one per torch thread)")
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
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--release", type=Path, default=None)
    p.add_argument("--devkit", type=Path, default=None)
    p.set_defaults(func=_run_verify_data)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluator import distributed
    from .evaluator import runner as ev

    # under torchrun (WORLD_SIZE > 1) the images are sharded across ranks; otherwise one process does it all
    try:
        table = distributed.maybe_evaluate_distributed(
            models=args.model, datasets=args.dataset, out=args.out, data_root=args.data_root, device=args.device,
            batch_size=args.batch_size, precision=args.precision, num_workers=args.num_workers,
            skip_bad_images=args.skip_bad_images, strict_count=args.strict_count, release=args.release,
            overwrite=args.overwrite)  # fmt: skip
    except distributed.DistributedError as e:
        print(f"generalization: error: {e}", file=sys.stderr)
        return 1
    if not distributed.is_main_process():
        return 0
    if len(table):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.precision == "both":
        print(ev.precision_agreement(args.out).to_string(index=False))
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
    p.add_argument("--format", choices=["auto", "long", "mturk", "records"], default="auto")
    p.add_argument("--tasks", type=Path, help="tasks.csv from `generalization tasks` (control roles)")
    p.add_argument("--candidates", type=Path, help="candidate table: images not in it (or the tasks) are reported")
    p.add_argument("--min-annotations", type=int, default=0)
    p.add_argument("--min-control-accuracy", type=float, default=None,
                   help="drop workers whose control accuracy is below this (needs control roles)")
    p.add_argument("--min-controls", type=int, default=6, help="judge only workers with this many control answers")
    p.add_argument("--counts", type=Path, help="instead of annotations: an N x C vote-count .npy (CIFAR-10H style)")
    p.add_argument("--labels", type=Path, help="with --counts: the N labels (.npy)")
    p.add_argument("--out", type=Path, required=True, help="CSV to write; problems and worker quality go beside it")
    p.set_defaults(func=_run_selection_frequency)

    p = sub.add_parser("tasks", help="48-image labeling tasks: MTurk batch CSV, template and standalone pages")
    p.add_argument("--candidates", type=Path, required=True, help="image_id, class (+ url or path)")
    p.add_argument("--positives", type=Path, required=True, help="original test images: image_id, class (+ url)")
    p.add_argument("--negatives", type=Path, help="negative-control images (default: --positives)")
    p.add_argument("--class-info", type=Path, help="class, name, definition")
    p.add_argument("--similar", type=Path, help="JSON {class: [similar classes]} for negative controls")
    p.add_argument("--url-template", help="e.g. 'https://host/{image_id}.jpg' when the tables have no url")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--no-pages", action="store_true", help="skip the standalone pages")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_run_tasks)

    p = sub.add_parser("sample", help="sample a new test set (manifest, exclusion report, audit figure)")
    strategies = p.add_subparsers(dest="strategy", required=True)

    def common(q: argparse.ArgumentParser, seed_required: bool = True) -> None:
        q.add_argument("--candidates", type=Path, required=True,
                       help="image_id, class, selection_frequency, num_annotations (CSV/JSONL/Parquet)")
        q.add_argument("--seed", type=int, required=seed_required)
        q.add_argument("--min-annotations", type=int, default=0)
        q.add_argument("--exclusions", type=Path, help="image_id, reason [, class] (e.g. near_duplicate)")
        q.add_argument("--blacklist", type=Path, help="JSON list of image ids")
        q.add_argument("--carry-over", type=Path, help="a previous manifest: its still-usable images stay")
        q.add_argument("--no-shuffle", action="store_true", help="keep classes sorted instead of shuffling")
        q.add_argument("--no-figure", action="store_true")
        q.add_argument("--out", type=Path, required=True, help="folder for manifest.json and the reports")

    q = strategies.add_parser("matched-frequency", help="match the original's per-class frequency histogram")
    common(q)
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--original", type=Path, help="the original test images' frequency table")
    g.add_argument("--targets", type=Path, help="class, 0, 1, 2, 3, 4: target counts per bin")
    q.add_argument("--per-class", type=int, help="images per class (with --original)")
    q.add_argument("--min-annotations-original", type=int, default=0)
    q.add_argument("--upward-sampling", action="store_true", help="fill short bins from higher bins")
    q.set_defaults(func=_run_sample)

    q = strategies.add_parser("threshold", help="k random images per class with frequency >= tau")
    common(q)
    q.add_argument("--per-class", type=int, required=True)
    q.add_argument("--tau", type=float, required=True)
    q.add_argument("--class-threshold", action="append", default=[], metavar="CLASS=TAU")
    q.set_defaults(func=_run_sample)

    q = strategies.add_parser("top-images", help="the k highest-frequency images per class")
    common(q, seed_required=False)
    q.add_argument("--per-class", type=int, required=True)
    q.set_defaults(func=_run_sample)

    q = strategies.add_parser("keyword-counts", help="CIFAR-10.1 style: per-keyword counts from a start list")
    q.add_argument("--cifar101", type=Path, help="a CIFAR-10.1 other_data folder (sets every input)")
    q.add_argument("--version", default="v6", help="with --cifar101 (default v6)")
    q.add_argument("--pools", type=Path, help="JSON {keyword: [ids]}")
    q.add_argument("--counts", type=Path, help="JSON {class: {keyword: count}}")
    q.add_argument("--start", type=Path, help="JSON {keyword: [ids]} of the previous version")
    q.add_argument("--blacklist", type=Path, help="JSON list of ids")
    q.add_argument("--seed", type=int, required=True)
    q.add_argument("--compat-set-order", action="store_true",
                   help="build 'pool minus start' as list(set(pool) - set(start)) like the original "
                        "(interpreter-dependent; for comparison only)")
    q.add_argument("--compare-with", type=Path, help="a released JSON list of ids to compare position by position")
    q.add_argument("--out", type=Path, required=True)
    q.set_defaults(func=_run_sample)


def _run_selection_frequency(args: argparse.Namespace) -> int:
    import pandas as pd

    from .files import atomic_write_text, load_npy
    from .sampler import annotations as an

    out = args.out
    if args.counts is not None:
        if args.labels is None:
            raise DataError("--counts needs --labels")
        table = an.selection_frequencies_from_counts(load_npy(args.counts), load_npy(args.labels))
        atomic_write_text(out, table.to_csv(index=False, lineterminator="\n"))
        print(f"{out}: {len(table)} images, median selection frequency {table['selection_frequency'].median():.3f}")
        return 0
    if args.annotations is None:
        raise DataError("give an annotation file or --counts/--labels")
    tasks = an.read_table(args.tasks) if args.tasks else None
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
    atomic_write_text(out, table.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(f"{stem}.problems.csv", problems.to_csv(index=False, lineterminator="\n"))
    quality = quality.assign(excluded=quality["worker_id"].isin(excluded))
    atomic_write_text(f"{stem}.worker_quality.csv", pd.DataFrame(quality).to_csv(index=False, lineterminator="\n"))
    print(f"{out}: {len(table)} (image, class) pairs from {len(ann)} annotations; {len(problems)} problem rows "
          f"({stem}.problems.csv); {len(excluded)} workers cut")
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


def _run_sample(args: argparse.Namespace) -> int:
    from .files import load_json
    from .sampler import annotations as an
    from .sampler import strategies as sm

    if args.strategy == "keyword-counts":
        if args.cifar101 is not None:
            kw = sm.cifar101_keyword_inputs(args.cifar101, args.version)
        else:
            if not (args.pools and args.counts and args.start):
                raise DataError("keyword-counts needs --cifar101 or all of --pools, --counts, --start")
            kw = {"pools": load_json(args.pools), "counts": load_json(args.counts), "start": load_json(args.start),
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
                t = an.read_table(args.targets).drop(columns="line").set_index("class")
                t.columns = [int(c) for c in t.columns]
                targets = t.astype("int64")
            else:
                if args.per_class is None:
                    raise DataError("--original needs --per-class")
                targets = sm.target_histograms(sm.read_frequency_table(args.original), args.per_class,
                                               min_annotations=args.min_annotations_original)
            result = sm.matched_frequency(cand, targets, seed=args.seed, upward_sampling=args.upward_sampling,
                                          **common)
        elif args.strategy == "threshold":
            overrides = {}
            for item in args.class_threshold:
                cls, _, tau = item.rpartition("=")
                overrides[cls] = float(tau)
            result = sm.threshold(cand, args.per_class, args.tau, seed=args.seed, class_thresholds=overrides,
                                  **common)
        else:
            result = sm.top_images(cand, args.per_class, seed=args.seed, **common)
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
                   help="original test images: a folder of images or a uint8 .npy (N, H, W, 3)")
    p.add_argument("--candidates", type=Path, required=True, help="candidate images: a folder or a .npy")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--metric", nargs="+", choices=["l2", "dssim", "cnn"], default=["l2"],
                   help="distances to compute; a pair under the threshold of any of them is a duplicate link")
    p.add_argument("--threshold", action="append", default=[], metavar="METRIC=VALUE",
                   help="link threshold (distance <= VALUE), repeatable, e.g. l2=460800 dssim=0.12 cnn=0.05; "
                        "'none' = report only. Defaults: l2 150 x H*W*3 (RMS difference ~12 grey levels), "
                        "dssim 0.12, cnn none")
    p.add_argument("--k", type=int, default=5, help="neighbours per candidate and pool (default 5)")
    p.add_argument("--shortlist", type=int, default=10, help="l2 shortlist on which DSSIM is computed (default 10)")
    p.add_argument("--size", type=int, default=None, help="resize all images to SIZE x SIZE first")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, auto (default cpu)")
    p.add_argument("--cnn-arch", default="resnet18", help="torchvision backbone for --metric cnn")
    p.add_argument("--cnn-weights", default="DEFAULT",
                   help="DEFAULT, a weights-enum name (e.g. IMAGENET1K_V1), or 'random' (seeded, no download)")
    p.add_argument("--cnn-input-size", type=int, default=None,
                   help="resize before the CNN (default: the weights' crop size; random weights: as is)")
    p.add_argument("--seed", type=int, default=0, help="seed for random CNN weights")
    p.add_argument("--review-pairs", type=int, default=24, help="pairs per section of the review page")
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
        review_n=args.review_pairs,
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
                   env("GENERALIZATION_CIFAR101_RELEASE") is None)
    p.add_argument("--cifar10-labels", type=Path, default=env("GENERALIZATION_CIFAR10_LABELS"), required=
                   env("GENERALIZATION_CIFAR10_LABELS") is None)
    p.add_argument("--store", type=Path, default=None, help="store to import into (default: a temporary one)")
    p.add_argument("--per-class", type=int, default=200, help="resample size per class")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--n-bootstrap", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("results/selection-frequency"))
    p.set_defaults(func=_run_selection_frequency_report)


def _run_selection_frequency_report(args: argparse.Namespace) -> int:
    from .analysis.selection_frequency import write_report

    written = write_report(args.votes, args.cifar101_release, args.cifar10_labels, args.out, store=args.store,
                           per_class=args.per_class, seeds=args.seeds, n_bootstrap=args.n_bootstrap)
    for path in written:
        print(path)
    return 0


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="generalization",
        description="Build new test sets, evaluate models on them, and measure the accuracy gap.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_import, _add_analyze, _add_reproduce, _add_evaluate, _add_sample, _add_near_duplicates,
                _add_selection_frequency):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, FileExistsError, FileNotFoundError) as e:
        print(f"generalization: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `generalization list-models | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("generalization: interrupted; finished records are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
