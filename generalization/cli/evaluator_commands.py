"""The batch-evaluator subcommands of the ``generalization`` command: ``evaluate``, ``list-models``, ``list-
datasets`` and ``verify-data`` (moved out of :mod:`generalization.cli`, which builds the parser from these
modules and runs ``main``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..files import DataError
from .arguments import device, non_negative_int, out_dir, positive_int


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
    p.add_argument("--write-manifests", type=Path, metavar="FOLDER",
                   help="(re)generate FOLDER/<test set>.json from the registry (the repository's data_manifests/)")
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

    from ..evaluator import models, runner
    from ..evaluator.communication import DistributedError, Launch

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
    from ..evaluator import models

    for name in models.list_models(args.pattern, include_timm=args.timm):
        if args.details:
            d = models.model_spec(name).describe()
            print(name, {k: v for k, v in d.items() if k != "model"})
        else:
            print(name)
    return 0


def _run_list_datasets(args: argparse.Namespace) -> int:
    from ..evaluator import datasets

    if args.write_manifests is not None:
        written, stale = datasets.write_manifests(args.write_manifests)
        print(f"{args.write_manifests}: {len(written)} manifest(s) written, "
              f"{len(datasets.DATASETS) - len(written)} unchanged")
        for p in stale:
            print(f"  not a built-in test set (remove it if it was generated): {p}")
        return 0
    print(datasets.list_datasets().to_string(index=False))
    return 0


def _run_verify_data(args: argparse.Namespace) -> int:
    from ..evaluator import datasets

    report = datasets.verify_data(args.dataset, args.data_root, release=args.release, devkit=args.devkit)
    print(report.summary())
    return 0 if report.ok else 1
