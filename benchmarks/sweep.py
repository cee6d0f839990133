"""Benchmark: naive per-model loop vs the decode-once sweep vs the model-only ceiling, side by side.

Variants, on the same models and images, timed in the same process, interleaved model by model (in an order
rotated every repeat), ``--repeats`` times:

naive
    what timm's ``validate.py`` does, once per model: a DataLoader whose dataset opens each image with PIL and
    applies the model's own transforms (Resize, CenterCrop, ToTensor, Normalize), then the model.
sweep
    the evaluator: :func:`generalization.evaluator.decoding.decode_images` once per preprocessing group
    (torchvision.io decoding + uint8 resize/crop), then :func:`~generalization.evaluator.runner.predict_topk` for every
    model of the group (normalisation per batch).
ceiling
    the models alone on already-preprocessed float tensors in memory (no I/O, no decoding).

Throughput is images x models per second; speed-up = naive time / sweep time; efficiency = ceiling time /
sweep time; bound = naive time / ceiling time, the most any input pipeline could gain over the naive loop with
the models executed the same way. Every variant uses the same models (eval mode, channels-last, inference
mode), batch size and malloc settings (the evaluator's :func:`~generalization.evaluator.runner.keep_freed_memory`,
set for the whole process unless ``--system-malloc``). ``--also-nchw`` adds the naive loop with NCHW models,
timm validate.py's default.

Cases::

    cifar    cifar10/resnet20/32/44/56 (published weights) on the CIFAR-10 test set in the official format, built
             from ../shared/data (1,000 lossless + 9,000 JPEG copies; --limit takes the first N rows)
    imagenet 5 small torchvision models with random weights on the 1,000 photos of ../shared/data/imagenet-sample
    lite     EfficientNet-Lite0/1/2 (three preprocessing configs) on the same photos

Usage: ``python benchmarks/sweep.py --case cifar --case imagenet --repeats 3 [--limit N] [--device cuda]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test-fixture builders

from builders import assemble_cifar10_test  # noqa: E402

from generalization.evaluator.datasets import (  # noqa: E402
    CountMismatchWarning,
    ImageSet,
    imagenet_wnids,
    load_dataset,
)
from generalization.evaluator.decode import Preprocess, normalize  # noqa: E402
from generalization.evaluator.decoding import decode_groups, decode_images, iter_batches  # noqa: E402
from generalization.evaluator.models import model_spec  # noqa: E402
from generalization.evaluator.runner import keep_freed_memory, predict_topk  # noqa: E402

SMALL_TORCHVISION = [
    "mobilenet_v3_small",
    "squeezenet1_1",
    "shufflenet_v2_x0_5",
    "mnasnet0_5",
    "regnet_x_400mf",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ naive


class _PilFiles(torch.utils.data.Dataset):
    """timm/torchvision-style dataset: PIL open + convert("RGB") + the model's transforms, per image."""

    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB"))


class _PilArrays(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10-style: Image.fromarray per image, then ToTensor + Normalize."""

    def __init__(self, pixels, transform):
        self.pixels, self.transform = pixels, transform

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.pixels[i]))


def _pil_transform(pre: Preprocess):
    from torchvision import transforms as T

    steps = []
    if pre.resize_size is not None:
        interp = T.InterpolationMode(pre.interpolation)
        steps += [T.Resize(pre.resize_size, interpolation=interp), T.CenterCrop(pre.input_size)]
    return T.Compose(steps + [T.ToTensor(), T.Normalize(pre.mean, pre.std)])


def run_naive(ds: ImageSet, models, device, batch_size, num_workers, channels_last: bool = True) -> float:
    t0 = time.perf_counter()
    for spec, model in models:
        tf = _pil_transform(spec.preprocess)
        data = _PilArrays(ds.pixels, tf) if ds.pixels is not None else _PilFiles(ds.paths, tf)
        loader = torch.utils.data.DataLoader(
            data, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda"
        )
        with torch.inference_mode():
            for x in loader:
                x = x.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                model(x).float().topk(5, dim=1).indices.cpu()
    _sync(device)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------ sweep


def sweep_decode(ds: ImageSet, models, device, batch_size, num_workers) -> tuple[float, dict]:
    """The sweep's first step: every image decoded once, resized/cropped once per preprocessing group."""
    t0 = time.perf_counter()
    decoded = decode_groups(
        ds,
        [s.preprocess for s, _ in models],
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=False,
    )
    _sync(device)
    return time.perf_counter() - t0, decoded


def sweep_predict(decoded: dict, spec, model, device, batch_size) -> float:
    """The sweep's second step for one model: its group's uint8 array, normalised per batch, through it."""
    t0 = time.perf_counter()
    d = decoded[spec.preprocess.decode_key]
    predict_topk(
        model,
        iter_batches(d, batch_size),
        spec.preprocess,
        len(d),
        num_classes=spec.num_classes,
        device=device,
        progress=False,
    )
    _sync(device)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- ceiling


def prepare_ceiling(ds: ImageSet, models, device, batch_size):
    """Preprocessed float batches per model, in memory on the device (prepared outside the timing)."""
    cache = decode_groups(
        ds, [s.preprocess for s, _ in models], device=device, batch_size=batch_size, progress=False
    )
    prepared = []
    for spec, model in models:
        decoded = cache[spec.preprocess.decode_key]
        batches = [
            normalize(b.to(device), spec.preprocess).contiguous(memory_format=torch.channels_last)
            for _, b in iter_batches(decoded, batch_size)
        ]
        prepared.append((model, batches))
    return prepared


def run_ceiling(prepared, device) -> float:
    t0 = time.perf_counter()
    with torch.inference_mode():
        for model, batches in prepared:
            for x in batches:
                model(x).float().topk(5, dim=1).indices.cpu()
    _sync(device)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- cases


def _photos_set(shared: Path, limit: int | None) -> ImageSet:
    files = sorted((shared / "imagenet-sample").glob("*.JPEG"))[:limit]
    wnids = imagenet_wnids()
    labels = np.array([wnids.index(f.name.split("_")[0]) for f in files])
    return ImageSet(
        "imagenet-sample", 1000, labels, [f.stem for f in files], "files", "file name", shared, paths=files
    )


def build_case(case: str, shared: Path, tmp: Path, limit: int | None, seed: int):
    if case == "cifar":
        home = tmp / "torch_home"
        (home / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
        for f in sorted((shared / "cifar10-resnets").glob("*.th")):
            shutil.copy(f, home / "hub" / "checkpoints" / f.name)
        os.environ["TORCH_HOME"] = str(home)
        assemble_cifar10_test(shared, tmp / "cifar", 10_000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CountMismatchWarning)
            ds = load_dataset("cifar10-test", tmp / "cifar")
        if limit:
            ds.labels, ds.pixels = ds.labels[:limit], ds.pixels[:limit]
        names = [f"cifar10/resnet{d}" for d in (20, 32, 44, 56)]
        specs = [model_spec(n) for n in names]
    elif case == "imagenet":
        ds = _photos_set(shared, limit)
        torch.manual_seed(seed)  # random weights: timing only
        specs = [model_spec(f"torchvision/{n}", pretrained=False) for n in SMALL_TORCHVISION]
    elif case == "lite":
        ds = _photos_set(shared, limit)
        specs = [model_spec(f"efficientnet-lite/lite{v}") for v in (0, 1, 2)]
    else:
        raise SystemExit(f"unknown case {case}")
    return ds, specs


def bench_case(case, args, shared, device) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ds, specs = build_case(case, shared, Path(tmp), args.limit, args.seed)
        models = [(s, s.build().eval().to(device, memory_format=torch.channels_last)) for s in specs]
        prepared = prepare_ceiling(ds, models, device, args.batch_size)
        # warm-up (allocator, oneDNN primitive caches) on a few batches of every model, untimed
        with torch.inference_mode():
            for model, batches in prepared:
                model(batches[0])
        names = ["naive", "sweep", "ceiling"] + (["naive_nchw"] if args.also_nchw else [])
        times = {k: [] for k in names}
        decode = []
        for r in range(args.repeats):
            # interleaved per model, in an order rotated every repeat, so that the machine's drifts (a shared
            # box) fall on every variant alike; sweep = its one decode + its per-model passes
            t = dict.fromkeys(names, 0.0)
            t["sweep"], decoded = sweep_decode(ds, models, device, args.batch_size, args.num_workers)
            decode.append(t["sweep"])
            for m, (spec, model) in enumerate(models):
                order = names[(r + m) % len(names) :] + names[: (r + m) % len(names)]
                for variant in order:
                    if variant == "naive":
                        t[variant] += run_naive(ds, [(spec, model)], device, args.batch_size, args.num_workers)
                    elif variant == "sweep":
                        t[variant] += sweep_predict(decoded, spec, model, device, args.batch_size)
                    elif variant == "ceiling":
                        t[variant] += run_ceiling([prepared[m]], device)
                    else:  # timm validate.py's default memory format (channels-last is opt-in there)
                        model.to(memory_format=torch.contiguous_format)
                        t[variant] += run_naive(
                            ds, [(spec, model)], device, args.batch_size, args.num_workers, False
                        )
                        model.to(memory_format=torch.channels_last)
            for d in decoded.values():
                d.release()
            for k in names:
                times[k].append(t[k])
            print(
                f"  [{case}] repeat {r + 1}: "
                + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items())
                + f"  (speed-up {t['naive'] / t['sweep']:.2f}x, efficiency {t['ceiling'] / t['sweep']:.2f})",
                flush=True,
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        work = len(ds) * len(models)
        return {
            "case": case,
            "images": len(ds),
            "models": [s.name for s in specs],
            "decode_groups": len({s.preprocess.decode_key for s in specs}),
            "median_s": med,
            "all_s": times,
            "decode_s_median": statistics.median(decode),
            "throughput": {k: work / v for k, v in med.items()},
            "speedup": med["naive"] / med["sweep"],
            "speedup_vs_nchw_naive": med["naive_nchw"] / med["sweep"] if "naive_nchw" in med else None,
            "efficiency": med["ceiling"] / med["sweep"],
            "bound": med["naive"] / med["ceiling"],
            "speedup_per_repeat": [a / b for a, b in zip(times["naive"], times["sweep"], strict=True)],
            "efficiency_per_repeat": [a / b for a, b in zip(times["ceiling"], times["sweep"], strict=True)],
        }


def pil_agreement(shared: Path, names: list[str], limit: int | None, batch_size: int) -> list[dict]:
    """Top-1 of each model on the photos with the torchvision.io pipeline vs the PIL pipeline (timm/torchvision
    presets), and how often the two top-1 predictions agree."""
    from generalization.evaluator.decode import decode_pil_reference

    ds = _photos_set(shared, limit)
    out = []
    for name in names:
        spec = model_spec(name)
        model = spec.build().eval().to(memory_format=torch.channels_last)
        tv = decode_images(ds, spec.preprocess, batch_size=batch_size, progress=False)
        pil = torch.stack([decode_pil_reference(p, spec.preprocess) for p in ds.paths])
        preds = {}
        for label, images in (("torchvision", tv.images), ("pil", pil)):
            batches = (
                (np.arange(i, min(i + batch_size, len(ds))), images[i : i + batch_size])
                for i in range(0, len(ds), batch_size)
            )
            preds[label] = predict_topk(
                model, batches, spec.preprocess, len(ds), num_classes=spec.num_classes, progress=False
            )[:, 0]
        row = {
            "model": name,
            "images": len(ds),
            "top1_torchvision": 100 * float((preds["torchvision"] == ds.labels).mean()),
            "top1_pil": 100 * float((preds["pil"] == ds.labels).mean()),
            "top1_agreement": float((preds["torchvision"] == preds["pil"]).mean()),
            "mean_abs_pixel_diff": float((tv.images.int() - pil.int()).abs().float().mean()),
        }
        print(f"  {row}", flush=True)
        out.append(row)
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--distributed" in argv:  # 1 vs N torchrun processes on the same models and images (issue 10)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import sweep_distributed

        return sweep_distributed.main([a for a in argv if a != "--distributed"])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", action="append", choices=["cifar", "imagenet", "lite"])
    p.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (time-limited runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--also-nchw", action="store_true", help="also time the naive loop with NCHW models (timm's default)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument(
        "--pil-agreement",
        nargs="*",
        metavar="MODEL",
        help="instead of timing: compare the torchvision.io and PIL pipelines' top-1 on the photos",
    )
    p.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc malloc at its defaults (every variant; the evaluator tunes it)",
    )
    args = p.parse_args(argv)
    malloc = "system" if args.system_malloc or not keep_freed_memory() else "keep freed memory"
    if args.pil_agreement is not None:
        rows = pil_agreement(
            args.shared_data, args.pil_agreement or ["efficientnet-lite/lite0"], args.limit, args.batch_size
        )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return 0
    device = torch.device(args.device)
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    )
    print(
        f"device: {device} ({machine}); torch {torch.__version__}; batch {args.batch_size}; "
        f"naive-loop workers {args.num_workers}; sweep decode threads {torch.get_num_threads()}; "
        f"malloc: {malloc}; repeats {args.repeats} (medians)"
    )
    results = []
    for case in args.case or ["cifar", "imagenet", "lite"]:
        results.append(bench_case(case, args, args.shared_data, device))
    print(
        f"\n{'case':<9}{'images':>7}{'models':>7}{'naive':>10}{'sweep':>10}{'ceiling':>10}{'speed-up':>10}"
        f"{'effic.':>8}{'bound':>8}   (throughput: images x models / s)"
    )
    for r in results:
        t = r["throughput"]
        print(
            f"{r['case']:<9}{r['images']:>7}{len(r['models']):>7}{t['naive']:>10.1f}{t['sweep']:>10.1f}"
            f"{t['ceiling']:>10.1f}{r['speedup']:>9.2f}x{r['efficiency']:>8.2f}{r['bound']:>7.2f}x"
            + (
                f"   naive NCHW {t['naive_nchw']:.1f}, speed-up over it {r['speedup_vs_nchw_naive']:.2f}x"
                if r["speedup_vs_nchw_naive"]
                else ""
            )
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"device": str(device), "machine": machine, "malloc": malloc, "results": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
