"""The evaluator's communication object: a world of one passes errors through unchanged; across ranks an error
travels as a Failure (type, message, rank); the launch is parsed from a mapping the CLI passes."""

from __future__ import annotations

import pickle

import pytest
import torch

from generalization.evaluator.communication import FAIL_HOOK, DistributedError, Failure, Launch, World
from generalization.evaluator.decode import BadImageError
from generalization.files import DataError


def test_a_world_of_one_runs_every_step_here():
    w = World(torch.device("cpu"))
    assert (w.rank, w.world) == (0, 1) and w.shard(130, 64) == (0, 130)
    assert w.run(lambda a, b=0: a + b, "sum", 2, b=3) == 5
    assert w.run(lambda: 7, "x", gather=True) == [7]
    assert w.run(lambda: 7, "x", root_only=True) == 7
    assert w.gather("a", "x") == ["a"] and w.broadcast("b", "x") == "b"
    # errors keep their own type in one process
    with pytest.raises(BadImageError):
        w.run(lambda: (_ for _ in ()).throw(BadImageError("x.jpg: truncated")), "decoding")


def test_failures_cross_ranks_as_type_and_message():
    f = Failure.of(BadImageError("x.jpg: truncated (use --skip-bad-images)"), rank=3)
    assert f == pickle.loads(pickle.dumps(f))  # what gather_object sends
    assert (f.kind, f.rank, f.data_error) == ("BadImageError", 3, True)
    e = f.error()
    assert isinstance(e, DataError) and str(e) == "BadImageError on rank 3: x.jpg: truncated (use --skip-bad-images)"
    # a message that merely starts with "DataError" is not a DataError (no text is parsed)
    g = Failure.of(RuntimeError("DataError-like text: out of memory"), rank=1).error()
    assert type(g) is DistributedError and str(g) == "RuntimeError on rank 1: DataError-like text: out of memory"


def test_launch_from_environ():
    assert Launch.from_environ({}) == Launch()
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "GENERALIZATION_DIST_TIMEOUT_S": "60", "GENERALIZATION_THREADS_PER_RANK": "3", FAIL_HOOK: "1:2"}  # fmt: skip
    launch = Launch.from_environ(env)
    assert launch == Launch(1, 4, 1, 2, 60.0, 3, 2)
    assert Launch.from_environ({**env, FAIL_HOOK: "0:2"}).fail_after is None  # another rank's hook
    with pytest.raises(DataError, match="RANK:BATCHES"):
        Launch.from_environ({FAIL_HOOK: "two"})
    with pytest.raises(DataError, match="WORLD_SIZE"):
        Launch.from_environ({"WORLD_SIZE": "many"})
