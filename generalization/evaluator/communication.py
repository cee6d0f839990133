"""How the processes of one evaluation talk: the small communication object the runner is written against.

One process is a world of size 1 (:class:`World`, this module); a ``torchrun`` launch is a world of W ranks
(:class:`~generalization.evaluator.distributed.TorchWorld`, the same interface over ``torch.distributed``).
The runner (:mod:`generalization.evaluator.runner`) has one loop and asks the world for:

- ``rank`` / ``world`` / ``device``, and ``shard(n, batch_size)``: this rank's rows of a test set;
- ``run(fn, what, ...)``: run a step on every rank (or on rank 0 only); a failure on any rank is raised on
  every rank, so they all stop together; with ``gather=True`` rank 0 receives every rank's result;
- ``gather`` / ``broadcast`` of small Python objects;
- ``progress(...)``: a counter of finished images that rank 0 shows as one bar, and ``batches(...)``, which
  counts the batches a rank runs through it.

In a world of one, ``run`` simply calls the function, so errors keep their own type (a
:class:`~generalization.evaluator.decode.BadImageError`, a ``KeyboardInterrupt``). Across ranks an error
travels as a :class:`Failure` (the error's type and message and the rank), never as text to be parsed.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..files import DataError
from .decoding import progress_bar

__all__ = [
    "DistributedError",
    "FAIL_HOOK",
    "Failure",
    "Launch",
    "World",
    "shard_bounds",
    "signals_held",
]

FAIL_HOOK = "GENERALIZATION_DIST_FAIL_AFTER"  # "RANK:BATCHES": that rank exits after BATCHES batches (tests)


class DistributedError(RuntimeError):
    """A rank failed or died; finished pairs are in the store, the pair in progress is not."""


@dataclass(frozen=True)
class Failure:
    """An error on one rank, as it crosses to the others: the error's type, its message and the rank."""

    kind: str  # the exception's class name, for the message
    message: str
    rank: int
    data_error: bool  # a DataError (bad input: the CLI's exit status 2) rather than a fault

    @classmethod
    def of(cls, error: BaseException, rank: int) -> Failure:
        return cls(type(error).__name__, str(error), rank, isinstance(error, DataError))

    def error(self) -> Exception:
        """The exception every rank raises for this failure."""
        text = f"{self.kind} on rank {self.rank}: {self.message}"
        return DataError(text) if self.data_error else DistributedError(text)


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a ``torchrun`` launch, and the options of the transport between the ranks.

    The CLI builds it from the environment (:meth:`from_environ`); the library reads no environment
    variable. The default is a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    timeout_s: float = 1800.0  # a collective that waits longer fails (a rank stuck rather than dead)
    threads_per_rank: int | None = None  # CPU ranks: intra-op threads (default: cores // local world size)
    fail_after: int | None = None  # test hook: this rank exits after that many batches

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Launch:
        """torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, and
        ``GENERALIZATION_DIST_TIMEOUT_S``, ``GENERALIZATION_THREADS_PER_RANK`` and the test hook ``FAIL_HOOK``."""

        def number(key: str, default, kind=int):
            value = environ.get(key)
            if not value:
                return default
            try:
                return kind(value)
            except ValueError:
                raise DataError(f"${key}={value!r}: expected a number") from None

        rank, world = number("RANK", 0), number("WORLD_SIZE", 1)
        fail_after = None
        hook = environ.get(FAIL_HOOK)
        if hook:
            hook_rank, _, batches = hook.partition(":")
            if not (hook_rank.isdigit() and batches.isdigit()):
                raise DataError(f"${FAIL_HOOK}={hook!r}: expected RANK:BATCHES")
            fail_after = int(batches) if int(hook_rank) == rank else None
        return cls(
            rank=rank,
            world_size=world,
            local_rank=number("LOCAL_RANK", 0),
            local_world_size=number("LOCAL_WORLD_SIZE", world),
            timeout_s=number("GENERALIZATION_DIST_TIMEOUT_S", 1800.0, float),
            threads_per_rank=number("GENERALIZATION_THREADS_PER_RANK", None),
            fail_after=fail_after,
        )


def shard_bounds(n: int, batch_size: int, world_size: int, rank: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of rank ``rank``: a contiguous run of whole batches, ranks in order.

    The ``ceil(n / batch_size)`` batches are split as evenly as possible (shards differ by at most one batch);
    a rank can get an empty shard when there are fewer batches than ranks. Because the boundaries fall on
    batch boundaries, every rank runs exactly the batches a single process would.
    """
    nb = -(-n // batch_size)
    b0, b1 = rank * nb // world_size, (rank + 1) * nb // world_size
    return min(b0 * batch_size, n), min(b1 * batch_size, n)


def device_name(dev: torch.device) -> str:
    """The device as the records' meta name it: the GPU's model, or the CPU and its thread count."""
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@contextmanager
def signals_held():
    """Hold SIGTERM/SIGINT while one pair is written, so an interrupt or a teardown cannot cut it in half."""
    sigs = {signal.SIGTERM, signal.SIGINT}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class _Bar:
    """Progress of one pair in one process: a tqdm bar."""

    def __init__(self, total: int, desc: str, enabled: bool | None) -> None:
        self.total = total
        self.bar = progress_bar(total, desc, enabled)

    def add(self, k: int) -> None:
        self.bar.update(k)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.bar.close()


class World:
    """A world of one process (rank 0 of 1): every step runs here, errors propagate unchanged."""

    rank = 0
    world = 1

    def __init__(self, device: torch.device, fail_after: int | None = None) -> None:
        self.device = device
        self.fail_after = fail_after

    def describe(self) -> str:
        """What the records' meta call the device."""
        return device_name(self.device)

    def shard(self, n: int, batch_size: int) -> tuple[int, int]:
        """This rank's rows ``[lo, hi)`` of a test set of ``n`` images."""
        return shard_bounds(n, batch_size, self.world, self.rank)

    def run(
        self, fn: Callable, what: str, *args, root_only: bool = False, gather: bool = False, **kwargs
    ) -> Any:
        """``fn(*args, **kwargs)`` on every rank (rank 0 only with ``root_only``; the others get None).

        A failure on any rank is raised on every rank. With ``gather`` rank 0 gets the list of every rank's
        result (the others None). ``what`` names the step in the error of a lost rank.
        """
        value = fn(*args, **kwargs)
        return [value] if gather else value

    def gather(self, obj: Any, what: str) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None on the other ranks."""
        return [obj]

    def broadcast(self, obj: Any, what: str) -> Any:
        """Rank 0's ``obj`` on every rank."""
        return obj

    def progress(self, key: str, total: int, desc: str, enabled: bool | None):
        """A counter of finished images (``add``, ``flush``, ``close``) shown by rank 0 as one bar."""
        return _Bar(total, desc, enabled)

    def batches(
        self, batches: Iterable[tuple[np.ndarray, torch.Tensor]], bar
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``batches``, each counted on ``bar`` once it has been run (and the test hook ``fail_after``)."""
        for i, (rows, batch) in enumerate(batches):
            if self.fail_after is not None and i >= self.fail_after:
                print(f"rank {self.rank}: {FAIL_HOOK}: exiting now (test hook)", flush=True, file=sys.stderr)
                os._exit(1)
            yield rows, batch
            bar.add(len(rows))

