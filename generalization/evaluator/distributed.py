"""The world of a ``torchrun`` launch: the runner's communication object over ``torch.distributed``.

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT ...] -m generalization evaluate ...`` runs
the one evaluation loop (:func:`generalization.evaluator.runner.run_evaluation`) in every process (rank); this
module is how those ranks talk (:class:`TorchWorld`, the interface of
:class:`~generalization.evaluator.communication.World`). See docs/distributed.md.

Sharding
    Each rank gets one contiguous run of whole batches of every test set
    (:func:`~generalization.evaluator.communication.shard_bounds`), decodes it once per preprocessing and runs
    every model on it, so on the CPU the predictions are bitwise those of a single process.
Gathering
    A step run with ``gather=True`` sends every rank's result (with any error) to rank 0 with ``gather_object``;
    rank 0 alone writes to the store and broadcasts the outcome, so all ranks stop together on an error.
    Objects go over a gloo group even when the models run on NCCL.
Faults
    A rank that raises reports a :class:`~generalization.evaluator.communication.Failure` at the next exchange
    and every rank raises it; a rank that dies (killed, out of memory) makes the collectives fail (gloo/NCCL see
    the closed connection; torchrun also tears the group down with SIGTERM, turned into a clear error here; a
    timeout, ``Launch.timeout_s``, is the last resort).
Progress
    Every rank adds its finished images to a counter in the launcher's key-value store; rank 0 shows one bar
    for all ranks.
Threads
    On the CPU each rank uses ``cores // local world size`` intra-op threads (torchrun would set 1), or
    ``Launch.threads_per_rank``.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from ..devices import resolve_device
from .communication import FAIL_HOOK, DistributedError, Failure, Launch, World, device_name, shard_bounds
from .decoding import progress_bar

__all__ = ["FAIL_HOOK", "DistributedError", "TorchWorld", "open_world", "shard_bounds"]


@contextmanager
def open_world(launch: Launch | None, device: str = "auto") -> Iterator[World]:
    """The world this process belongs to: a :class:`World` of one, or (a launch with ``world_size`` > 1) a
    :class:`TorchWorld` joined to the launch's process group for the duration of the block."""
    if launch is None or launch.world_size <= 1:
        yield World(resolve_device(device))
        return
    dev = resolve_device(device, local_rank=launch.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    elif dev.type == "cpu":
        # the ranks of a node share its cores; one thread each (torchrun's default) wastes the rest
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(launch.threads_per_rank or max(1, cores // max(1, launch.local_world_size)))
    with _process_group(dev, launch.timeout_s) as group, _terminate_cleanly(launch.rank):
        yield TorchWorld(dev, group, launch.fail_after)


@contextmanager
def _process_group(dev: torch.device, timeout_s: float):
    """Join (or reuse) the default process group; yields the group used to exchange Python objects."""
    own = not dist.is_initialized()
    if own:
        kwargs: dict[str, Any] = {
            "backend": "nccl" if dev.type == "cuda" else "gloo",
            "timeout": datetime.timedelta(seconds=timeout_s),
        }
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


@contextmanager
def _terminate_cleanly(rank: int):
    """Turn the launcher's SIGTERM (sent to every rank when one fails) into a clear error that unwinds."""

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


class TorchWorld(World):
    """The ranks of a ``torchrun`` launch, talking over ``torch.distributed`` (see :class:`World`)."""

    def __init__(self, device: torch.device, group, fail_after: int | None = None) -> None:
        super().__init__(device, fail_after)
        self.group = group
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def describe(self) -> str:
        return f"{self.world} x {device_name(self.device)}"

    def _lost(self, what: str, e: Exception) -> DistributedError:
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
            raise self._lost(what, e) from e
        return box[0]

    def gather(self, obj: Any, what: str) -> list[Any] | None:
        out = [None] * self.world if self.rank == 0 else None
        try:
            dist.gather_object(obj, out, dst=0, group=self.group)
        except DistributedError:
            raise
        except (RuntimeError, dist.DistBackendError) as e:
            raise self._lost(what, e) from e
        return out

    def run(
        self, fn: Callable, what: str, *args, root_only: bool = False, gather: bool = False, **kwargs
    ) -> Any:
        value, failure = None, None
        if self.rank == 0 or not root_only:
            try:
                value = fn(*args, **kwargs)
            except DistributedError:
                raise
            except Exception as e:  # reported to every rank, which all raise it
                failure = Failure.of(e, self.rank)
        if root_only:
            failure = self.broadcast(failure, what)
        else:
            # every rank's outcome to rank 0, and the first failure (in rank order) back to every rank
            parts = self.gather((failure, value if gather else None), what)
            first = None if parts is None else next((f for f, _ in parts if f is not None), None)
            failure = self.broadcast(first, what)
            if gather:
                value = None if parts is None else [v for _, v in parts]
        if failure is not None:
            raise failure.error()
        return value

    def progress(self, key: str, total: int, desc: str, enabled: bool | None):
        return _Progress(key, total, f"{desc} ({self.world} ranks)", self, enabled)


class _Progress:
    """A counter of finished images per pair in the launcher's store; rank 0 polls it into a tqdm bar."""

    def __init__(self, key: str, total: int, desc: str, world: TorchWorld, enabled: bool | None) -> None:
        self.key, self.total, self.world = key, total, world
        try:
            self.store = dist.distributed_c10d._get_default_store()
        except (AttributeError, RuntimeError, ValueError):
            self.store = None  # fall back: rank 0's own count x world size
        self.pending, self.own, self.last = 0, 0, 0.0
        self.bar = progress_bar(total, desc, enabled) if world.rank == 0 else None

    def add(self, k: int) -> None:
        self.pending += k
        self.own += k
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        self.flush()

    def flush(self) -> None:
        done = self.own * self.world.world
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


if __name__ == "__main__":  # the entry of earlier versions: say where it went instead of doing nothing
    raise SystemExit("generalization: error: run `torchrun ... -m generalization evaluate <flags>` (one CLI)")
