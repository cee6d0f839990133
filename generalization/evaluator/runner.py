"""The batch evaluator: many models x many test sets, each test set decoded once per preprocessing.

One loop (:func:`run_evaluation`) serves one process and the ranks of a ``torchrun`` launch alike: it is written
against a small communication object (:mod:`~generalization.evaluator.communication`; one process is a world of
size 1). For every test set, rank 0 decides which (model, precision) pairs are still to do; each rank decodes its
shard of the images once per ``Preprocess.decode_key`` (:func:`~generalization.evaluator.decoding.decode_groups`)
and runs every model of the group over it; rank 0 gathers the top-k rows and writes each pair to the store as
soon as it finishes (atomically; source ``evaluate``, or ``evaluate-bf16``), so an interrupt loses at most the
pair in progress and a rerun skips finished pairs.

The shared options travel as one frozen :class:`EvalSettings`; :func:`evaluate` is the same with keyword
arguments. The pieces are public for benchmarks and other loops: :func:`predict_topk` turns an iterable of
``(row indices, uint8 batch)`` into top-k rows for one model, and :func:`write_result` stores one pair.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import sources
from ..files import DataError
from ..store.records import PredictionStore, RecordExistsError
from .communication import DistributedError, Launch, World, signals_held
from .datasets import ImageSet, load_dataset
from .decode import Preprocess, normalize
from .decoding import DecodedImages, decode_groups, iter_batches, progress_bar
from .distributed import open_world
from .models import ModelSpec, model_spec
from .scoring import label_space, restricted_topk

__all__ = [
    "EVALUATE_SOURCE",
    "SOURCES",
    "EvalSettings",
    "evaluate",
    "run_evaluation",
    "predict_topk",
    "write_result",
    "skipped_row",
    "group_by_decode",
    "precision_agreement",
    "keep_freed_memory",
    "clear_cache",
]

EVALUATE_SOURCE = sources.EVALUATE
SOURCES = {"fp32": sources.EVALUATE, "bf16": sources.EVALUATE_BF16}


@dataclass(frozen=True)
class EvalSettings:
    """The options every step of an evaluation shares (the ``evaluate`` command's flags).

    Parameters
    ----------
    out : path
        The prediction store's root.
    data_root : path, optional
        Folder holding the test sets named by name.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (in a ``torchrun`` launch ``auto``/``cuda`` is the rank's GPU).
    precision : {"fp32", "bf16", "both"}
        fp32 (default, reproducible) is stored under source ``evaluate``, bf16 under ``evaluate-bf16``; "both"
        runs each model twice (see :func:`precision_agreement`).
    num_workers, decode_threads : int
        Decoding in ``num_workers`` DataLoader processes when > 0, else in ``decode_threads`` threads (default:
        torch's intra-op thread count).
    skip_bad_images : bool
        Leave out (and count) unreadable images instead of failing; the test set is then stored as the subset.
    strict_count : bool
        Fail when a test set's image count differs from the published one (default: warn and flag).
    release : path, optional
        ImageNetV2 release clone (or dataset JSON): image order, ids and labels of the ImageNet sets.
    max_memory_bytes : int
        Decoded images beyond this (per process) go to memory-mapped files under ``out/.cache``.
    overwrite : bool
        Recompute pairs already in the store.
    progress : bool, optional
        Progress bars (default: when stderr is a terminal).
    keep_freed_memory : bool
        Tune glibc's malloc for the run (see :func:`keep_freed_memory`).
    """

    out: Path
    data_root: Path | None = None
    device: str = "auto"
    batch_size: int = 64
    precision: str = "fp32"
    num_workers: int = 0
    decode_threads: int | None = None
    skip_bad_images: bool = False
    strict_count: bool = False
    release: Path | None = None
    max_memory_bytes: int = 4 << 30
    overwrite: bool = False
    progress: bool | None = None
    keep_freed_memory: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.precision not in (*SOURCES, "both"):
            raise DataError(f"--precision must be fp32, bf16 or both, got {self.precision!r}")

    @property
    def precisions(self) -> list[str]:
        return list(SOURCES) if self.precision == "both" else [self.precision]


def keep_freed_memory(enabled: bool = True) -> bool:
    """Make glibc's malloc keep freed memory in the process instead of handing it back to the kernel.

    A convnet's activations at 224 px are tens of MB per layer; glibc serves blocks that large with fresh
    ``mmap`` calls and unmaps them on free, so every layer of every batch page-faults its output in again
    (measured on 2 cores: a third of the run in the kernel, mobilenet_v3_small 195 -> 285 images/s with this
    setting). This is what PyTorch's CPU tuning guide gets from jemalloc/tcmalloc, done with two ``mallopt``
    calls: no mmap'd blocks, no trimming below 2 GiB of free heap. Peak memory is unchanged; freed memory is
    simply reused instead of being returned.

    Applies to the whole process, once; a no-op (returns False) off glibc or when not ``enabled`` (the CLI
    passes ``GENERALIZATION_MALLOC=system`` as ``enabled=False``, to leave malloc alone).
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED is not None:
        return _MALLOC_TUNED
    _MALLOC_TUNED = False
    if not enabled or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only (musl's mallopt does nothing)
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]  # an int value: a larger one would wrap silently
    libc.mallopt.restype = ctypes.c_int
    m_trim_threshold, m_mmap_max = -1, -4
    _MALLOC_TUNED = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    return _MALLOC_TUNED


_MALLOC_TUNED: bool | None = None


# ----------------------------------------------------------------------------------------- prediction


def predict_topk(
    model: nn.Module,
    batches: Iterable[tuple[np.ndarray, torch.Tensor]],
    pre: Preprocess,
    n: int,
    *,
    num_classes: int,
    model_name: str = "model",
    test_set: str = "test set",
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    k: int = 5,
    progress: bool | None = None,
) -> np.ndarray:
    """Top-``k`` class indices (best first) of ``model`` for every row of ``batches``: an ``n x min(k, C)`` int
    array, ``C`` the number of classes the test set is scored on (a 3-class test set gives its 3 classes ranked;
    the store then records no top-5).

    ``batches`` yields ``(row indices, uint8 B x 3 x S x S)``; rows not yielded stay -1 (a shard). The model's
    output size must equal ``num_classes``.
    """
    device = torch.device(device)
    if precision not in SOURCES:
        raise ValueError(f"precision must be one of {list(SOURCES)}, got {precision!r}")
    groups = label_space(test_set)  # ImageNet-A/-R, ObjectNet: argmax restricted to their classes
    width = min(k, num_classes if groups is None else len(groups))
    out = np.full((n, width), -1, dtype=np.int64)
    bar = progress_bar(n, f"{model_name} on {test_set}", progress)
    buf = None  # one float buffer reused by every batch
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    try:
        with torch.inference_mode(), autocast:
            for rows, batch in batches:
                # channels-last: about 2x faster for these convnets on CPU (oneDNN) and for tensor cores
                x = normalize(batch.to(device, non_blocking=True), pre, out=buf)  # channels-last
                buf = x if buf is None or x.shape[0] > buf.shape[0] else buf
                logits = model(x)
                if logits.ndim != 2 or logits.shape[1] != num_classes:
                    raise DataError(
                        f"{model_name}: outputs {tuple(logits.shape[1:])} scores per image, but {test_set} "
                        f"has {num_classes} classes (a model for another label space?)"
                    )
                if groups is None:
                    out[rows] = logits.float().topk(width, dim=1).indices.cpu().numpy()
                else:  # a test set on a subset of the model's classes (scoring.py)
                    out[rows] = restricted_topk(logits, groups, width).cpu().numpy()
                bar.update(len(rows))
    finally:
        bar.close()
    return out


def write_result(
    store: PredictionStore,
    *,
    model: str,
    ds: ImageSet,
    keep: np.ndarray,
    topk: np.ndarray,
    meta: dict[str, Any],
    precision: str = "fp32",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Store one (model, test set) pair atomically; returns its accuracy row.

    A record already there with other predictions (a concurrent run on other hardware) is kept, with a warning.
    """
    source = SOURCES[precision]
    try:
        rec = store.put(
            source=source,
            model=model,
            test_set=ds.name,
            predictions=topk[keep],
            meta=meta,
            overwrite=overwrite,
        )
    except RecordExistsError as e:
        warnings.warn(f"kept the existing record: {e}", stacklevel=2)
        rec = store.get(source, model, ds.name)
    return {
        "source": source,
        "model": model,
        "test_set": ds.name,
        "n": rec.n,
        "top1_correct": rec.top1_correct,
        "top1": 100.0 * rec.top1_correct / rec.n,
        "top5": None if rec.top5_correct is None else 100.0 * rec.top5_correct / rec.n,
        "images_per_s": meta.get("images_per_s"),
        "wall_s": meta.get("wall_s"),
        "published_top1": meta.get("published_top1"),
        "flag": meta.get("flag", ""),
    }


def _store_labels(store: PredictionStore, ds: ImageSet, keep: np.ndarray) -> None:
    ids = None if ds.image_ids is None else [ds.image_ids[i] for i in keep]
    try:
        store.put_labels(
            ds.name, ds.labels[keep], num_classes=ds.num_classes, image_ids=ids, source=EVALUATE_SOURCE
        )
    except DataError as e:
        raise DataError(
            f"{e}. This copy of {ds.name} ({len(keep):,} images, {ds.order}, {ds.root}) differs from "
            "the one already in the store: use another --out, or the same images in the same order "
            "(for ImageNet sets pass --release so the order is the release's)"
        ) from None


# ------------------------------------------------------------------------------------------- evaluate


def evaluate(
    models: Sequence[str | ModelSpec],
    datasets: Sequence[str | ImageSet],
    *,
    out: str | os.PathLike,
    log: Callable[..., Any] = print,
    launch: Launch | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Evaluate every model on every test set and write the results to the store at ``out``.

    Parameters
    ----------
    models : names (see :mod:`generalization.evaluator.models`) or :class:`~generalization.evaluator.models.ModelSpec`
    datasets : test-set names (loaded from ``data_root``) or loaded :class:`~generalization.evaluator.datasets.ImageSet`
    out : path
        The prediction store's root.
    log : callable
        Receives one line per test set and per pair (on rank 0).
    launch : Launch, optional
        This process's place in a ``torchrun`` launch (default: a single process).
    **options
        The other fields of :class:`EvalSettings` (``data_root``, ``device``, ``batch_size``, ``precision``,
        ``skip_bad_images``, ``overwrite``, ...).

    Returns
    -------
    DataFrame
        One row per (model, test set, precision): counts, top-1/top-5 %, images/s, flags; pairs skipped
        because they were already stored have ``skipped=True``. Empty on ranks other than 0.
    """
    return run_evaluation(models, datasets, EvalSettings(out=Path(out), **options), launch=launch, log=log)


def run_evaluation(
    models: Sequence[str | ModelSpec],
    datasets: Sequence[str | ImageSet],
    settings: EvalSettings,
    *,
    launch: Launch | None = None,
    log: Callable[..., Any] = print,
) -> pd.DataFrame:
    """:func:`evaluate` with its options in one :class:`EvalSettings`: the loop of one process or of every rank.

    Under a ``torchrun`` launch (``launch.world_size`` > 1) every rank runs this; the images of each test set are
    sharded across the ranks and rank 0 writes what a single process writes: the same records, predictions,
    labels and accuracy rows (the records' meta differ only in what measures the run, ``wall_s``,
    ``images_per_s``, ``decode_s_shared``, ``device``, and carry ``world_size`` and ``sharding``). A failure on
    any rank is raised on every rank (a :class:`~generalization.files.DataError` for bad input, else a
    :class:`~generalization.evaluator.communication.DistributedError`).
    """
    keep_freed_memory(settings.keep_freed_memory)  # activations (and decode buffers) are allocated afresh per batch
    with open_world(launch, settings.device) as world:
        run = _Run(world, settings, log if world.rank == 0 else _silent)
        if world.world > 1:
            threads = f" with {torch.get_num_threads()} threads" if world.device.type == "cpu" else ""
            run.say(f"distributed evaluation: {world.world} ranks, rank 0 on {world.device}{threads}")
        specs = world.run(lambda: [m if isinstance(m, ModelSpec) else model_spec(m) for m in models], "model lookup")
        for index, d in enumerate(datasets):
            run.test_set(index, d, specs)
        world.run(_silent, "the final barrier")
    return pd.DataFrame(run.rows if world.rank == 0 else [])


def _silent(*args, **kwargs) -> None:
    return None


class _Run:
    """One evaluation's loop state: the world, the settings, the store (written by rank 0 only), the rows."""

    def __init__(self, world: World, settings: EvalSettings, say: Callable[..., Any]) -> None:
        self.world, self.settings, self.say = world, settings, say
        self.store = PredictionStore(settings.out)
        self.rows: list[dict[str, Any]] = []

    def _load(self, d: str | ImageSet) -> ImageSet:
        if isinstance(d, ImageSet):
            return d
        s = self.settings
        if s.data_root is None:
            raise DataError("--data-root is required to load a test set by name")
        with warnings.catch_warnings():
            if self.world.rank != 0:  # warn once, on rank 0
                warnings.simplefilter("ignore")
            return load_dataset(d, s.data_root, release=s.release, strict_count=s.strict_count)

    def _plan(self, ds: ImageSet, specs: list[ModelSpec]) -> list[tuple[int, str]]:
        """The pairs still to do (rank 0, which alone reads the store)."""
        if not self.settings.skip_bad_images:  # check the copy against the store before any work (and on a no-op rerun)
            _store_labels(self.store, ds, np.arange(len(ds)))
        return [
            (i, p)
            for i, s in enumerate(specs)
            for p in self.settings.precisions
            if self.settings.overwrite or not self.store.has(SOURCES[p], s.name, ds.name)
        ]

    def test_set(self, index: int, d: str | ImageSet, specs: list[ModelSpec]) -> None:
        world, s = self.world, self.settings
        ds = world.run(self._load, f"loading {d}", d)
        for spec in specs:
            if spec.num_classes != ds.num_classes:
                raise DataError(
                    f"{spec.name} predicts {spec.num_classes} classes but {ds.name} has {ds.num_classes}; "
                    "evaluate it on a test set with its label space"
                )
        pending = world.run(self._plan, f"planning {ds.name}", ds, specs, root_only=True)
        pending = world.broadcast(pending, f"planning {ds.name}")
        if world.rank == 0:
            self.rows += [
                skipped_row(self.store, p, spec.name, ds.name)
                for i, spec in enumerate(specs)
                for p in s.precisions
                if (i, p) not in pending
            ]
        if not pending:
            self.say(f"{ds.name}: all {len(specs) * len(s.precisions)} pairs already in {s.out}; nothing to do")
            return

        groups = group_by_decode((specs[i], p) for i, p in pending)
        lo, hi = world.shard(len(ds), s.batch_size)
        # every image of the shard is decoded once; each group gets its own resized/cropped uint8 copy
        decoded_all = world.run(
            decode_groups,
            f"decoding {ds.name}",
            ds if (lo, hi) == (0, len(ds)) else _shard(ds, lo, hi),
            [members[0][0].preprocess for members in groups.values()],
            device=world.device,
            batch_size=s.batch_size,
            num_workers=s.num_workers,
            decode_threads=s.decode_threads,
            skip_bad=s.skip_bad_images,
            max_memory_bytes=s.max_memory_bytes,
            cache_dir=s.out / ".cache",
            progress=s.progress if world.rank == 0 else False,
        )
        try:
            first = next(iter(decoded_all.values()))
            # the kept rows and the bad images of all shards, in rank (= row) order
            shards = world.gather((lo + first.keep, first.bad, first.seconds), f"decoding {ds.name}")
            kept = None
            if world.rank == 0:
                kept = _Kept(
                    np.concatenate([sh[0] for sh in shards]).astype(np.int64),
                    [b for sh in shards for b in sh[1]],
                    list(ds.flags),
                    max(sh[2] for sh in shards),
                )
                if kept.bad:
                    kept.flags.append(f"{len(kept.bad)} unreadable image(s) skipped")
                    self.say(f"{ds.name}: skipped {len(kept.bad)} unreadable image(s), e.g. {kept.bad[0]}")
                where = f" on {world.world} ranks" if world.world > 1 else ""
                self.say(
                    f"{ds.name}: decoded {len(kept.rows):,} images once for {len(groups)} preprocessing(s)"
                    f"{where} in {kept.decode_s:.1f} s" + (f" (rows {lo}..{hi - 1} on rank 0)" if where else "")
                )
            if s.skip_bad_images:
                world.run(
                    _store_labels, f"storing the labels of {ds.name}", self.store, ds, kept and kept.rows,
                    root_only=True,
                )  # fmt: skip
            todo = [
                (key, spec, p)
                for key, members in sorted(groups.items(), key=lambda kv: str(kv[0]))
                for spec, p in members
            ]
            t_start = time.perf_counter()
            for j, (key, spec, p) in enumerate(todo):
                row = self.pair(spec, p, ds, decoded_all[key], lo, kept, f"gen/progress/{index}/{j}")
                if world.rank == 0:
                    self.rows.append(row)
                    if len(todo) > 1:
                        eta = (time.perf_counter() - t_start) / (j + 1) * (len(todo) - j - 1)
                        self.say(
                            f"  {j + 1} of {len(todo)} pairs on {ds.name} done; "
                            f"ETA {datetime.timedelta(seconds=round(eta))}"
                        )
                if all(key != k for k, _, _ in todo[j + 1 :]):
                    decoded_all[key].release()
        finally:
            for dd in decoded_all.values():
                dd.release()

    def pair(
        self,
        spec: ModelSpec,
        precision: str,
        ds: ImageSet,
        decoded: DecodedImages,
        lo: int,
        kept: _Kept | None,
        key: str,
    ) -> dict[str, Any] | None:
        """Run one model on every rank's shard; rank 0 gathers, writes and returns the accuracy row."""
        world, dev = self.world, self.world.device
        what = f"{spec.name} on {ds.name} [{precision}]"
        model = world.run(lambda: spec.build().eval().to(dev, memory_format=torch.channels_last), what)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        bar = world.progress(key, len(ds), f"{spec.name} on {ds.name}", self.settings.progress)

        def predict(model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
            topk = predict_topk(
                model,
                world.batches(iter_batches(decoded, self.settings.batch_size), bar),
                spec.preprocess,
                len(decoded),
                num_classes=ds.num_classes,
                model_name=spec.name,
                test_set=ds.name,
                device=dev,
                precision=precision,
                progress=False,
            )
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            bar.flush()
            return lo + decoded.keep, topk

        try:
            parts = world.run(predict, what, model, gather=True)
        finally:
            bar.close()
        del model
        wall = time.perf_counter() - t0
        row = world.run(self._write, what, spec, precision, ds, parts, kept, wall, root_only=True)
        if world.rank == 0:
            pub = f" (published {spec.published_top1:.2f})" if spec.published_top1 is not None else ""
            across = f" across {world.world} ranks" if world.world > 1 else ""
            self.say(
                f"{what}: top-1 {row['top1']:.2f} %{pub}, {row['images_per_s']} images/s{across}"
                + (f"  [flag: {row['flag']}]" if row["flag"] else "")
            )
        return row

    def _write(
        self, spec: ModelSpec, precision: str, ds: ImageSet, parts: list, kept: _Kept, wall: float
    ) -> dict[str, Any]:
        """Rank 0: put the gathered rows in place, check that every kept row came back, write the pair."""
        k = max(topk.shape[1] for _, topk in parts)
        full = np.full((len(ds), k), -1, dtype=np.int64)
        seen = np.zeros(len(ds), dtype=bool)
        for rows, topk in parts:
            full[rows, : topk.shape[1]] = topk
            seen[rows] = True
        # never store an incomplete gather: every kept row must have come back from its rank
        if not np.array_equal(np.flatnonzero(seen), kept.rows) or (len(kept.rows) and (full[kept.rows] < 0).any()):
            raise DistributedError(
                f"{spec.name} on {ds.name}: the gathered predictions are incomplete "
                f"({int((full[kept.rows] < 0).any(axis=1).sum())} of {len(kept.rows)} kept rows missing); "
                "nothing written"
            )
        s, world = self.settings, self.world
        meta: dict[str, Any] = {
            "wall_s": round(wall, 3),
            "images_per_s": round(len(kept.rows) / wall, 1) if wall > 0 else None,
            "decode_s_shared": round(kept.decode_s, 3),
            "device": world.describe(),
            "precision": precision,
            "batch_size": s.batch_size,
            "preprocessing": spec.preprocess.to_dict(),
            "weights": spec.weights,
            "published_top1": spec.published_top1,
            "test_set_copy": ds.describe(),
            "torch": torch.__version__,
        }
        if world.world > 1:
            meta.update(world_size=world.world, sharding="contiguous whole batches")
        if kept.flags:
            meta["flag"] = "; ".join(kept.flags)
        if kept.bad:
            meta["skipped_images"] = kept.bad[:100]
        with signals_held():
            return write_result(
                self.store,
                model=spec.name,
                ds=ds,
                keep=kept.rows,
                topk=full,
                meta=meta,
                precision=precision,
                overwrite=s.overwrite,
            )


@dataclass
class _Kept:
    """What rank 0 knows of a decoded test set: the rows kept (all shards), the bad images, flags, decode time."""

    rows: np.ndarray
    bad: list[str]
    flags: list[str]
    decode_s: float


def _shard(ds: ImageSet, lo: int, hi: int) -> ImageSet:
    return dataclasses.replace(
        ds,
        labels=ds.labels[lo:hi],
        image_ids=None if ds.image_ids is None else ds.image_ids[lo:hi],
        paths=None if ds.paths is None else ds.paths[lo:hi],
        pixels=None if ds.pixels is None else ds.pixels[lo:hi],
        flags=list(ds.flags),
    )


def skipped_row(store: PredictionStore, precision: str, model: str, test_set: str) -> dict[str, Any]:
    """The result row of a pair already in the store (not recomputed)."""
    rec = store.get(SOURCES[precision], model, test_set)
    return {
        "source": SOURCES[precision],
        "model": model,
        "test_set": test_set,
        "n": rec.n,
        "top1_correct": rec.top1_correct,
        "top1": 100.0 * rec.top1_correct / rec.n,
        "skipped": True,
    }


def group_by_decode(pairs: Iterable[tuple[ModelSpec, str]]) -> dict[tuple, list[tuple[ModelSpec, str]]]:
    """``(model, precision)`` pairs grouped by the decoded copy they share (``Preprocess.decode_key``)."""
    groups: dict[tuple, list[tuple[ModelSpec, str]]] = {}
    for spec, precision in pairs:
        groups.setdefault(spec.preprocess.decode_key, []).append((spec, precision))
    return groups


def precision_agreement(
    store: str | os.PathLike | PredictionStore, test_set: str | None = None
) -> pd.DataFrame:
    """Top-1 agreement between the fp32 (``evaluate``) and bf16 (``evaluate-bf16``) records of each model."""
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    recs = {(r.source, r.model, r.test_set) for r in store.records()}
    rows = []
    for source, model, ts in sorted(recs):
        if (
            source != SOURCES["fp32"]
            or (SOURCES["bf16"], model, ts) not in recs
            or (test_set and ts != test_set)
        ):
            continue
        a = store.predictions(SOURCES["fp32"], model, ts)
        b = store.predictions(SOURCES["bf16"], model, ts)
        fa, fb = store.get(SOURCES["fp32"], model, ts), store.get(SOURCES["bf16"], model, ts)
        rows.append(
            {
                "model": model,
                "test_set": ts,
                "n": len(a),
                "top1_agreement": float((a[:, 0] == b[:, 0]).mean()),
                "top1_fp32": 100.0 * fa.top1_correct / fa.n,
                "top1_bf16": 100.0 * fb.top1_correct / fb.n,
            }
        )
    return pd.DataFrame(rows, columns=["model", "test_set", "n", "top1_agreement", "top1_fp32", "top1_bf16"])


def clear_cache(out: str | os.PathLike) -> None:
    """Remove decode caches left by a killed run."""
    shutil.rmtree(Path(out) / ".cache", ignore_errors=True)
