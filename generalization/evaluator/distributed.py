"""Data-parallel, decode-once evaluation across processes, GPUs and nodes, launched with ``torchrun``.

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT ...] -m generalization evaluate ...`` runs
:func:`evaluate_distributed` (same parameters as :func:`generalization.evaluator.runner.evaluate`) in every process
(rank). See docs/distributed.md.

Sharding
    The images of each test set, in its fixed order, are cut into ``ceil(n / batch_size)`` batches and each rank
    gets one contiguous run of whole batches (rank r: batches ``r*B//W .. (r+1)*B//W - 1``). A rank decodes its
    own shard once per preprocessing (:func:`~generalization.evaluator.runner.decode_groups`) and runs every model on
    it. Because the shard boundaries fall on batch boundaries, every rank runs exactly the batches a single
    process would, so on the CPU the predictions are bitwise the same as a single-process run.
Gathering
    After each (model, test set, precision) every rank sends its per-image top-5 (with its global row indices,
    its skipped images and its wall time) to rank 0 with ``gather_object``; rank 0 assembles the N x 5 array,
    checks that every kept row was filled, writes the pair with :func:`~generalization.evaluator.runner.write_result`
    (atomic, exactly what a single process writes) and broadcasts the outcome, so all ranks stop together
    on an error. Only rank 0 ever writes to the store.
Resume and faults
    Rank 0 decides which pairs are pending (not in the store, or ``overwrite``) and broadcasts the list. A rank
    that raises reports its error to the others at the next exchange and every rank fails with it; a rank
    that dies (killed, out of memory) makes the collectives fail (gloo/NCCL see the closed connection; torchrun
    also tears the group down; a timeout, ``GENERALIZATION_DIST_TIMEOUT_S``, default 1800, is the last resort).
    In every case rank 0 has written only pairs whose gathered predictions were complete; a pair is written
    with SIGTERM/SIGINT held back, so a teardown never leaves half a record.
Progress
    Every rank adds its finished images to a counter in the launcher's key-value store; rank 0 shows one bar
    for all ranks (images/s across ranks, ETA) and logs each pair's throughput and the sweep's ETA.
Threads
    On the CPU each rank uses ``cores // local world size`` intra-op threads (torchrun would set 1);
    ``GENERALIZATION_THREADS_PER_RANK`` overrides it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from ..files import DataError
from ..store.records import PredictionStore
from . import runner as ev
from .datasets import ImageSet, load_dataset
from .models import ModelSpec, model_spec

__all__ = [
    "DistributedError",
    "is_distributed_launch",
    "is_main_process",
    "shard_bounds",
    "evaluate_distributed",
    "maybe_evaluate_distributed",
]

FAIL_HOOK = "GENERALIZATION_DIST_FAIL_AFTER"  # "RANK:BATCHES": that rank exits after BATCHES batches (tests)


class DistributedError(RuntimeError):
    """A rank failed or died; finished pairs are in the store, the pair in progress is not."""


def is_distributed_launch() -> bool:
    """True inside a ``torchrun`` launch with more than one process (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0 (or not distributed at all): the process that prints and writes."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def shard_bounds(n: int, batch_size: int, world_size: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of rank ``rank``: a contiguous run of whole batches, ranks in order.

    The ``ceil(n / batch_size)`` batches are split as evenly as possible (shards differ by at most one batch);
    a rank can get an empty shard when there are fewer batches than ranks.
    """
    nb = -(-n // batch_size)
    b0, b1 = rank * nb // world_size, (rank + 1) * nb // world_size
    return min(b0 * batch_size, n), min(b1 * batch_size, n)


def _shard(ds: ImageSet, lo: int, hi: int) -> ImageSet:
    return dataclasses.replace(
        ds,
        labels=ds.labels[lo:hi],
        image_ids=None if ds.image_ids is None else ds.image_ids[lo:hi],
        paths=None if ds.paths is None else ds.paths[lo:hi],
        pixels=None if ds.pixels is None else ds.pixels[lo:hi],
        flags=list(ds.flags),
    )


# ----------------------------------------------------------------------------------------- the group


def _local_device(device: str) -> torch.device:
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    elif device == "cuda":
        dev = torch.device(f"cuda:{local}")
    else:
        dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError(f"--device {device}: no CUDA device available on this node")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DataError(
                f"--device {device}: local rank {local} needs GPU {dev.index}, this node has "
                f"{torch.cuda.device_count()} (use --nproc-per-node <= the GPU count)"
            )
        torch.cuda.set_device(dev)
    return dev


def _set_threads(dev: torch.device) -> int:
    if dev.type != "cpu":
        return torch.get_num_threads()
    env = os.environ.get("GENERALIZATION_THREADS_PER_RANK")
    if env:
        threads = int(env)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        # the ranks of a node share its cores; one thread each (torchrun's default) wastes the rest
        threads = max(1, cores // max(1, local_world))
    torch.set_num_threads(threads)
    return threads


@contextmanager
def _process_group(dev: torch.device):
    """Join (or reuse) the default process group; yields the group used to exchange Python objects."""
    own = not dist.is_initialized()
    if own:
        timeout = datetime.timedelta(seconds=float(os.environ.get("GENERALIZATION_DIST_TIMEOUT_S", "1800")))
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timeout}
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
    # per-image predictions are small CPU objects: exchange them over gloo even when the models run on NCCL
    group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    try:
        yield group
    finally:
        if own:
            dist.destroy_process_group()


class _Comm:
    def __init__(self, group) -> None:
        self.group = group
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def _fail(self, what: str, e: Exception) -> DistributedError:
        return DistributedError(
            f"rank {self.rank}: lost the other ranks during {what} ({type(e).__name__}: {e}). A rank died or "
            "failed (see the launcher's log for which); pairs finished before it are in the store, the pair in "
            "progress is not. Rerun the same command to resume."
        )

    def broadcast(self, obj: Any, what: str) -> Any:
        box = [obj]
        try:
            dist.broadcast_object_list(box, src=0, group=self.group)
        except DistributedError:
            raise
        except (RuntimeError, dist.DistBackendError) as e:
            raise self._fail(what, e) from e
        return box[0]

    def gather(self, obj: Any, what: str) -> list[Any] | None:
        out = [None] * self.world if self.rank == 0 else None
        try:
            dist.gather_object(obj, out, dst=0, group=self.group)
        except DistributedError:
            raise
        except (RuntimeError, dist.DistBackendError) as e:
            raise self._fail(what, e) from e
        return out

    def check(self, err: str | None, what: str) -> None:
        """Every rank learns every rank's error; all raise the first one together."""
        errs = self.gather(err, what)
        first = None if errs is None else next((e for e in errs if e), None)
        first = self.broadcast(first, what)
        if first:
            raise DataError(first) if first.startswith("DataError") else DistributedError(first)

    def run(self, fn, what: str, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on every rank; if it raises on any rank, every rank raises that error."""
        try:
            result, err = fn(*args, **kwargs), None
        except DistributedError:
            raise
        except Exception as e:  # reported to every rank, which all raise it
            result, err = None, f"{type(e).__name__} on rank {self.rank}: {e}"
            if isinstance(e, DataError):
                err = f"DataError on rank {self.rank}: {e}"
        self.check(err, what)
        return result


@contextmanager
def _signals_held():
    """Hold SIGTERM/SIGINT while rank 0 writes one pair, so a teardown cannot cut a write in half."""
    sigs = {signal.SIGTERM, signal.SIGINT}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def _terminate_cleanly():
    """Turn the launcher's SIGTERM (sent to every rank when one fails) into a clear error that unwinds."""
    rank = os.environ.get("RANK", "?")

    def handler(signum, frame):
        raise DistributedError(
            f"rank {rank}: stopped by the launcher (SIGTERM): another rank failed or the job was cancelled "
            "(the launcher's log says which). Pairs finished before it are in the store, the pair in "
            "progress is not. Rerun the same command to resume."
        )

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# ------------------------------------------------------------------------------------------ progress


class _Progress:
    """A counter of finished images per pair in the launcher's store; rank 0 polls it into a tqdm bar."""

    def __init__(self, key: str, total: int, desc: str, comm: _Comm, enabled: bool | None) -> None:
        self.key, self.total, self.comm = key, total, comm
        try:
            self.store = dist.distributed_c10d._get_default_store()
        except (AttributeError, RuntimeError, ValueError):
            self.store = None  # fall back: rank 0's own count x world size
        self.pending, self.own, self.last = 0, 0, 0.0
        self.bar = ev._progress(total, desc, enabled) if comm.rank == 0 else None

    def add(self, k: int) -> None:
        self.pending += k
        self.own += k
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        self.flush()

    def flush(self) -> None:
        done = self.own * self.comm.world
        if self.store is not None:
            try:
                done = self.store.add(self.key, self.pending)
                self.pending = 0
            except RuntimeError:
                self.store = None
        if self.bar is not None:
            self.bar.update(min(done, self.total) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.total - self.bar.n)
            self.bar.close()


def _batches(decoded: ev.DecodedImages, batch_size: int, progress: _Progress, fail_after: int | None):
    for i, (rows, batch) in enumerate(ev.iter_batches(decoded, batch_size)):
        if fail_after is not None and i >= fail_after:
            print(
                f"rank {progress.comm.rank}: {FAIL_HOOK}: exiting now (test hook)",
                file=sys.stderr,
                flush=True,
            )
            os._exit(1)
        yield rows, batch
        progress.add(len(rows))


def _fail_after(rank: int) -> int | None:
    hook = os.environ.get(FAIL_HOOK)
    if not hook:
        return None
    r, n = hook.split(":")
    return int(n) if int(r) == rank else None


# ------------------------------------------------------------------------------------------ evaluate


def evaluate_distributed(
    models: Sequence[str | ModelSpec],
    datasets: Sequence[str | ImageSet],
    *,
    out: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 64,
    precision: str = "fp32",
    num_workers: int = 0,
    skip_bad_images: bool = False,
    strict_count: bool = False,
    release: str | os.PathLike | None = None,
    max_memory_bytes: int = 4 << 30,
    overwrite: bool = False,
    progress: bool | None = None,
    log=print,
) -> pd.DataFrame:
    """:func:`generalization.evaluator.runner.evaluate` data-parallel over the ranks of a ``torchrun`` launch.

    Same parameters and the same store contents (records, predictions, labels, accuracy rows) as a single
    process; the records' meta differ only in ``wall_s``, ``images_per_s``, ``decode_s_shared`` and
    ``device`` (measured across ranks) and carry ``world_size`` and ``sharding``. ``device="auto"`` (or
    ``"cuda"``) takes the rank's ``LOCAL_RANK`` GPU; the backend is NCCL on CUDA, gloo on the CPU.
    ``max_memory_bytes`` applies per rank. With ``skip_bad_images`` each rank skips the bad images of its
    shard and rank 0 stores the union of what was kept, as a single process would.

    Returns
    -------
    DataFrame
        On rank 0, one row per (model, test set, precision) as :func:`~generalization.evaluator.runner.evaluate`
        returns; an empty frame on the other ranks. Raises :class:`DistributedError` (or the
        :class:`~generalization.files.DataError` of the failing rank) on every rank when a rank fails.
    """
    dev = _local_device(device)
    threads = _set_threads(dev)
    ev.keep_freed_memory()
    with _process_group(dev) as group, _terminate_cleanly():
        comm = _Comm(group)
        say = log if comm.rank == 0 else (lambda *a, **k: None)
        say(
            f"distributed evaluation: {comm.world} ranks, backend {dist.get_backend()}, rank 0 on "
            f"{dev}{f' with {threads} threads' if dev.type == 'cpu' else ''}"
        )
        rows = _evaluate(
            comm,
            models,
            datasets,
            out=Path(out),
            data_root=data_root,
            dev=dev,
            batch_size=batch_size,
            precision=precision,
            num_workers=num_workers,
            skip_bad=skip_bad_images,
            strict_count=strict_count,
            release=release,
            max_memory_bytes=max_memory_bytes,
            overwrite=overwrite,
            progress=progress,
            say=say,
        )
        comm.check(None, "the final barrier")
    return pd.DataFrame(rows if comm.rank == 0 else [])


def _evaluate(
    comm: _Comm,
    models,
    datasets,
    *,
    out: Path,
    data_root,
    dev,
    batch_size,
    precision,
    num_workers,
    skip_bad,
    strict_count,
    release,
    max_memory_bytes,
    overwrite,
    progress,
    say,
) -> list[dict]:
    store = PredictionStore(out)
    precisions = ["fp32", "bf16"] if precision == "both" else [precision]
    if any(p not in ev.SOURCES for p in precisions):
        raise DataError(f"--precision must be fp32, bf16 or both, got {precision!r}")
    specs = comm.run(
        lambda: [m if isinstance(m, ModelSpec) else model_spec(m) for m in models], "model lookup"
    )
    rows: list[dict[str, Any]] = []
    fail_after = _fail_after(comm.rank)
    for d_index, d in enumerate(datasets):

        def load(d=d):
            if isinstance(d, ImageSet):
                return d
            with warnings.catch_warnings():
                if comm.rank != 0:  # warn once, on rank 0
                    warnings.simplefilter("ignore")
                return load_dataset(d, ev._need(data_root), release=release, strict_count=strict_count)

        ds = comm.run(load, f"loading {d}")
        for s in specs:
            if s.num_classes != ds.num_classes:
                raise DataError(
                    f"{s.name} predicts {s.num_classes} classes but {ds.name} has {ds.num_classes}; "
                    "evaluate it on a test set with its label space"
                )

        # rank 0 alone reads the store and decides what is left to do
        pending = comm.run(
            _plan if comm.rank == 0 else _nothing,
            f"planning {ds.name}",
            store,
            ds,
            specs,
            precisions,
            skip_bad,
            overwrite,
        )
        pending = comm.broadcast(pending, f"planning {ds.name}")
        if comm.rank == 0:
            rows += [
                ev.skipped_row(store, p, s.name, ds.name)
                for i, s in enumerate(specs)
                for p in precisions
                if (i, p) not in pending
            ]
        if not pending:
            say(f"{ds.name}: all {len(specs) * len(precisions)} pairs already in {out}; nothing to do")
            continue

        groups = ev.group_by_decode((specs[i], p) for i, p in pending)
        lo, hi = shard_bounds(len(ds), batch_size, comm.world, comm.rank)
        part = _shard(ds, lo, hi)

        decoded_all = comm.run(
            ev.decode_groups,
            f"decoding {ds.name}",
            part,
            [m[0][0].preprocess for m in groups.values()],
            device=dev,
            batch_size=batch_size,
            num_workers=num_workers,
            skip_bad=skip_bad,
            max_memory_bytes=max_memory_bytes,
            cache_dir=out / ".cache",
            progress=progress if comm.rank == 0 else False,
        )
        try:
            first = next(iter(decoded_all.values()))
            # the kept rows and the bad images of all shards, in rank (= row) order
            shards = comm.gather((lo + first.keep, first.bad, first.seconds), f"decoding {ds.name}")
            keep = bad = None
            flags = list(ds.flags)
            if comm.rank == 0:
                keep = np.concatenate([s[0] for s in shards]).astype(np.int64)
                bad = [b for s in shards for b in s[1]]
                decode_s = max(s[2] for s in shards)
                if bad:
                    flags.append(f"{len(bad)} unreadable image(s) skipped")
                    say(f"{ds.name}: skipped {len(bad)} unreadable image(s), e.g. {bad[0]}")
                say(
                    f"{ds.name}: decoded {len(keep):,} images once for {len(groups)} preprocessing(s) on "
                    f"{comm.world} ranks in {decode_s:.1f} s (rows {lo}..{hi - 1} on rank 0)"
                )
            if skip_bad:
                comm.run(
                    ev._store_labels if comm.rank == 0 else _nothing,
                    f"storing the labels of {ds.name}",
                    store,
                    ds,
                    keep,
                )
            todo = [
                (key, s, p)
                for key, members in sorted(groups.items(), key=lambda kv: str(kv[0]))
                for s, p in members
            ]
            t_start = time.perf_counter()
            for j, (key, s, p) in enumerate(todo):
                info = (
                    None
                    if comm.rank != 0
                    else {"keep": keep, "bad": bad, "flags": flags, "decode_s": decode_s}
                )
                rows_j = _run_pair(
                    comm,
                    store,
                    s,
                    p,
                    ds,
                    decoded_all[key],
                    lo,
                    dev,
                    batch_size,
                    progress,
                    f"gen/progress/{d_index}/{j}",
                    fail_after,
                    overwrite,
                    info,
                    say,
                )
                if comm.rank == 0:
                    rows.append(rows_j)
                    elapsed = time.perf_counter() - t_start
                    eta = elapsed / (j + 1) * (len(todo) - j - 1)
                    say(
                        f"  {j + 1} of {len(todo)} pairs on {ds.name} done; ETA {datetime.timedelta(seconds=round(eta))}"
                    )
                if all(key != k for k, _, _ in todo[j + 1 :]):
                    decoded_all[key].release()
        finally:
            for dd in decoded_all.values():
                dd.release()
    return rows


def _nothing(*args, **kwargs) -> None:
    return None


def _plan(store, ds: ImageSet, specs, precisions, skip_bad: bool, overwrite: bool) -> list[tuple[int, str]]:
    if not skip_bad:  # check the copy against the store before any work (and on a no-op rerun)
        ev._store_labels(store, ds, np.arange(len(ds)))
    return [
        (i, p)
        for i, s in enumerate(specs)
        for p in precisions
        if overwrite or not store.has(ev.SOURCES[p], s.name, ds.name)
    ]


def _run_pair(
    comm: _Comm,
    store,
    spec: ModelSpec,
    precision: str,
    ds: ImageSet,
    decoded: ev.DecodedImages,
    lo: int,
    dev: torch.device,
    batch_size: int,
    progress,
    key: str,
    fail_after,
    overwrite,
    info,
    say,
) -> dict[str, Any] | None:
    what = f"{spec.name} on {ds.name} [{precision}]"
    bar = _Progress(key, len(ds), f"{spec.name} on {ds.name} ({comm.world} ranks)", comm, progress)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()

    def predict():
        model = spec.build().eval().to(dev, memory_format=torch.channels_last)
        topk = ev.predict_topk(
            model,
            _batches(decoded, batch_size, bar, fail_after),
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
        return topk

    try:
        topk = predict()
        payload = (None, lo + decoded.keep, topk, time.perf_counter() - t0)
    except DistributedError:
        raise
    except Exception as e:  # reported to every rank, which all raise it
        kind = "DataError" if isinstance(e, DataError) else type(e).__name__
        payload = (f"{kind} on rank {comm.rank}: {e}", None, None, 0.0)
    bar.flush()
    parts = comm.gather(payload, what)
    bar.close()
    status, row = None, None
    if comm.rank == 0:
        try:
            row = _write(
                store,
                spec,
                precision,
                ds,
                parts,
                dev,
                batch_size,
                comm.world,
                info,
                time.perf_counter() - t0,
                overwrite,
            )
            say(
                f"{what}: top-1 {row['top1']:.2f} %"
                + (f" (published {spec.published_top1:.2f})" if spec.published_top1 is not None else "")
                + f", {row['images_per_s']} images/s across {comm.world} ranks"
            )
        except (DataError, DistributedError, ValueError, OSError) as e:
            status = f"{'DataError' if isinstance(e, DataError) else type(e).__name__} on rank 0: {e}"
    status = comm.broadcast(status, what)
    if status:
        raise DataError(status) if status.startswith("DataError") else DistributedError(status)
    return row


def _write(
    store,
    spec: ModelSpec,
    precision: str,
    ds: ImageSet,
    parts,
    dev,
    batch_size: int,
    world: int,
    info,
    wall: float,
    overwrite: bool,
) -> dict[str, Any]:
    errors = [p[0] for p in parts if p[0]]
    if errors:
        raise DataError(errors[0]) if errors[0].startswith("DataError") else DistributedError(errors[0])
    keep = info["keep"]
    full = np.full((len(ds), 5), -1, dtype=np.int64)
    seen = np.zeros(len(ds), dtype=bool)
    for _, rows, topk, _ in parts:
        full[rows, : topk.shape[1]] = topk
        seen[rows] = True
    k = max(p[2].shape[1] for p in parts)
    full = full[:, :k]
    # never store an incomplete gather: every kept row must have come back from its rank
    if not np.array_equal(np.flatnonzero(seen), keep) or (len(keep) and (full[keep] < 0).any()):
        raise DistributedError(
            f"{spec.name} on {ds.name}: the gathered predictions are incomplete "
            f"({int((full[keep] < 0).any(axis=1).sum())} of {len(keep)} kept rows missing); nothing written"
        )
    n_kept = len(keep)
    meta: dict[str, Any] = {
        "wall_s": round(wall, 3),
        "images_per_s": round(n_kept / wall, 1) if wall > 0 else None,
        "decode_s_shared": round(info["decode_s"], 3),
        "device": f"{world} x {ev._device_name(dev)}",
        "precision": precision,
        "batch_size": batch_size,
        "preprocessing": spec.preprocess.to_dict(),
        "weights": spec.weights,
        "published_top1": spec.published_top1,
        "test_set_copy": ds.describe(),
        "torch": torch.__version__,
        "world_size": world,
        "sharding": "contiguous whole batches",
    }
    if info["flags"]:
        meta["flag"] = "; ".join(info["flags"])
    if info["bad"]:
        meta["skipped_images"] = info["bad"][:100]
    with _signals_held():
        return ev.write_result(
            store,
            model=spec.name,
            ds=ds,
            keep=keep,
            topk=full,
            meta=meta,
            precision=precision,
            overwrite=overwrite,
        )


def maybe_evaluate_distributed(**kwargs) -> pd.DataFrame:
    """:func:`evaluate_distributed` under a multi-process ``torchrun`` launch, else the single-process
    :func:`generalization.evaluator.runner.evaluate`; same keyword arguments (``models``, ``datasets``, ``out``, ...)."""
    run = evaluate_distributed if is_distributed_launch() else ev.evaluate
    return run(**kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m generalization.evaluator.distributed <evaluate flags>`` (under torchrun): the evaluate command."""
    from ..cli import build_parser

    args = build_parser().parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    try:
        table = maybe_evaluate_distributed(
            models=args.model,
            datasets=args.dataset,
            out=args.out,
            data_root=args.data_root,
            device=args.device,
            batch_size=args.batch_size,
            precision=args.precision,
            num_workers=args.num_workers,
            skip_bad_images=args.skip_bad_images,
            strict_count=args.strict_count,
            release=args.release,
            overwrite=args.overwrite,
        )
    except (DataError, DistributedError, FileExistsError, FileNotFoundError) as e:
        print(f"generalization: error: {e}", file=sys.stderr)
        return 2
    if is_main_process() and len(table):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
