"""The sampler subcommands of the ``generalization`` command: ``sample`` (``selection-frequency``, ``tasks``,
``manifest`` and the sampling strategies) and ``near-duplicates`` (moved out of :mod:`generalization.cli`,
which builds the parser from these modules and runs ``main``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..files import DataError
from .arguments import (
    class_threshold,
    device,
    fraction,
    non_negative_int,
    out_dir,
    out_file,
    positive_int,
    url_template,
)


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

    from ..files import atomic_write_text, csv_text, load_npy
    from ..sampler import annotations as an
    from ..sampler import frequencies as fq

    out = args.out
    if args.counts is not None:
        if args.labels is None:
            raise DataError("--counts needs --labels")
        from ..sampler import manifests

        counts, labels = load_npy(args.counts), load_npy(args.labels)
        classes = manifests.parse_classes(args.classes)
        ids = None
        if args.image_folder is not None:
            if classes is None:
                raise DataError("--image-folder needs --classes (the class folder names in label order)")
            ids = manifests.class_folder_ids(args.image_folder, labels, classes)
        table = fq.selection_frequencies_from_counts(counts, labels, image_ids=ids)
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
    quality = fq.worker_quality(ann)
    excluded = []
    if args.min_control_accuracy is not None:
        excluded = fq.workers_below(quality, args.min_control_accuracy, min_controls=args.min_controls)
    table = fq.selection_frequencies(ann, min_annotations=args.min_annotations, exclude_workers=excluded)
    stem = out.with_suffix("")
    atomic_write_text(out, csv_text(table))
    atomic_write_text(f"{stem}.problems.csv", csv_text(problems))
    quality = quality.assign(excluded=quality["worker_id"].isin(excluded))
    atomic_write_text(f"{stem}.worker_quality.csv", csv_text(pd.DataFrame(quality)))
    print(f"{out}: {len(table)} (image, class) pairs from {len(ann)} annotations; {len(problems)} problem rows "
          f"({stem}.problems.csv); {len(excluded)} workers cut")
    return 0


def _run_manifest(args: argparse.Namespace) -> int:
    from ..files import atomic_write_json
    from ..sampler import annotations as an
    from ..sampler import manifests

    table = an.read_table(args.table)
    m = manifests.table_manifest(table, name=args.name, original=args.replicates,
                                 classes=manifests.parse_classes(args.classes), title=args.title, source=args.table)
    atomic_write_json(args.out, m)
    print(f"{args.out}: {m['num_images']} images of {args.name}"
          + (f", replicating {args.replicates}" if args.replicates else ""))
    return 0


def _run_tasks(args: argparse.Namespace) -> int:
    from ..files import load_json
    from ..sampler import annotations as an
    from ..sampler import tasks as tk

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
    from ..files import load_json

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


def _run_sample(args: argparse.Namespace) -> int:
    from ..sampler import annotations as an
    from ..sampler import strategies as sm

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
                targets = sm.read_targets(args.targets)
            else:
                if args.per_class is None:
                    raise DataError("--original needs --per-class")
                if args.shift is not None:
                    try:
                        targets = sm.shifted_targets(sm.read_frequency_table(args.original), args.per_class,
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
        from ..sampler import manifests

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

    from ..sampler import near_duplicates

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
