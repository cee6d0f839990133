"""KeywordCounts, the CIFAR-10.1 sampling procedure (:func:`keyword_counts`), with its inputs from the
CIFAR-10.1 release (:func:`cifar101_keyword_inputs`, :func:`load_pairs_json`) and the check against a
released list (:func:`count_matches`). Moved out of :mod:`generalization.sampler.strategies` (which re-
exports these names) to keep modules short; see docs/sampler.md section 6.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import DataError, load_json
from .sample_outputs import SampleResult, _native


def keyword_counts(
    pools: Mapping[str, Sequence],
    counts: Mapping[str, Mapping[str, int]],
    start: Mapping[str, Sequence],
    *,
    seed: int,
    blacklist: Sequence = (),
    pool_overrides: Mapping[tuple[str, str], Sequence] | None = None,
    empty_start: Sequence[tuple[str, str]] = (),
    compat_set_order: bool = False,
    starting_from: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> SampleResult:
    """KeywordCounts (CIFAR-10.1 style): per class and search keyword a target count, reached from a
    previous version's per-keyword lists by seeded removals and additions.

    Everything runs in the order of ``counts`` (class, then keyword), with one ``random.Random(seed)``:

    1. every blacklisted id is removed from every keyword pool (keeping pool order);
    2. a keyword starts from ``start[keyword]`` (empty when absent or listed in ``empty_start``); its pool
       is ``pools[keyword]``, or ``pool_overrides[(class, keyword)]`` when given;
    3. too many: ``random.sample`` the surplus from the current list and delete it, keeping the order of
       the rest; too few: ``random.sample`` the shortfall from the pool (the pool minus the starting list
       when that is not empty) and append the draws in draw order.

    The pool minus the starting list keeps pool order by default. ``compat_set_order=True`` instead
    builds it as ``list(set(pool) - set(start))``, as the original CIFAR-10.1 code did: that order is
    whatever the running interpreter gives, so use it only to compare with the released files (see
    ``docs/sampler.md``). A keyword whose pool is too small gets all of it and a shortfall row.

    Returns a :class:`SampleResult` whose manifest's ``image_filenames`` are ``[id, class]`` pairs in
    output order and whose ``extra["per_keyword"]`` holds each keyword's final list.
    """
    rng = random.Random(seed)
    bl = set(blacklist)
    clean = {kw: [x for x in pool if x not in bl] for kw, pool in pools.items()}
    overrides = dict(pool_overrides or {})
    empty = {tuple(x) for x in empty_start}
    pairs, sel_rows, short, per_keyword, excl_rows = [], [], [], {}, []
    for kw, pool in pools.items():
        for x in pool:
            if x in bl:
                excl_rows.append((x, kw, "blacklisted"))
    for cls, kws in counts.items():
        for kw, n in kws.items():
            n = int(n)
            begin = [] if (cls, kw) in empty else list(start.get(kw, []))
            if (cls, kw) in overrides:
                pool = list(overrides[(cls, kw)])
            elif kw in clean:
                pool = clean[kw]
            else:
                raise DataError(f"keyword {kw!r} of class {cls!r} has no pool")
            cur = list(begin)
            if n < len(cur):
                drop = set(rng.sample(cur, len(cur) - n))
                cur = [x for x in cur if x not in drop]
            elif n > len(cur):
                if not begin:
                    avail = list(pool)
                elif compat_set_order:
                    avail = list(set(pool) - set(begin))  # the original's order: interpreter-dependent
                else:
                    s = set(begin)
                    avail = [x for x in pool if x not in s]
                need = n - len(cur)
                if need > len(avail):
                    short.append((cls, kw, n, len(cur) + len(avail), need - len(avail)))
                    need = len(avail)
                cur += rng.sample(avail, need)
            per_keyword[(cls, kw)] = cur
            for x in cur:
                pairs.append((x, cls))
                sel_rows.append((x, cls, kw))
    shortfalls = pd.DataFrame(short, columns=["class", "keyword", "target", "achieved", "missing"])
    ordered = [[_native(a), _native(b)] for a, b in pairs]
    manifest = {
        "sampling_function": "keyword_counts",
        "target_size": int(sum(int(n) for kws in counts.values() for n in kws.values())),
        "num_images": len(ordered),
        "keyword_counts": {c: {k: int(n) for k, n in kws.items()} for c, kws in counts.items()},
        "compat_set_order": bool(compat_set_order),
        "seed": int(seed),
        "starting_from": starting_from,
        "image_filenames": ordered,
        "is_valid": len(shortfalls) == 0,
        "shortfalls": {
            f"{c}/{k}": int(m)
            for c, k, m in zip(shortfalls["class"], shortfalls["keyword"], shortfalls["missing"], strict=True)
        },
        **dict(parameters or {}),
    }
    selected = pd.DataFrame(sel_rows, columns=["image_id", "class", "keyword"])
    # a blacklisted id is reported once per keyword pool it was removed from; "class" holds the keyword here
    excl = pd.DataFrame(excl_rows, columns=["image_id", "class", "reason"]).rename(
        columns={"class": "keyword"}
    )
    excl["class"] = ""
    res = SampleResult(manifest, selected, excl[["image_id", "class", "reason", "keyword"]], shortfalls)
    res.extra["per_keyword"] = per_keyword
    return res


def count_matches(a: Sequence, b: Sequence) -> tuple[int, list[int]]:
    """How many positions of two equal-length sequences agree, and the positions that differ."""
    if len(a) != len(b):
        raise DataError(f"lengths differ: {len(a)} vs {len(b)}")
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return len(a) - len(diff), diff


def load_pairs_json(path: str | os.PathLike) -> list:
    """A JSON list (e.g. a blacklist or the released index list), checked to be a list."""
    v = load_json(path)
    if not isinstance(v, list):
        raise DataError(f"{path}: expected a JSON list, got {type(v).__name__}")
    return v


def cifar101_keyword_inputs(other_data: str | os.PathLike, version: str = "v6") -> dict[str, Any]:
    """The inputs of a CIFAR-10.1 keyword run from the release's ``other_data`` folder, as keyword
    arguments for :func:`keyword_counts` (plus ``released``: the released index list, for comparison).

    As in the original v6 run: pools from ``tinyimage_good_indices_subselected_<v>.json``, the blacklist
    ``blacklist_<v>.json``, targets ``keyword_counts_<v>.json``, starting lists from v4's
    ``cifar10.1_v4_ti_indices_per_keyword.json``; the keyword "cruiser" draws from
    ``cruiser_good_indices.json[class]`` and starts empty under "ship".
    """
    d = Path(other_data)
    pools = load_json(d / f"tinyimage_good_indices_subselected_{version}.json")
    counts = load_json(d / f"keyword_counts_{version}.json")
    start = load_json(d / "cifar10.1_v4_ti_indices_per_keyword.json")
    blacklist = load_pairs_json(d / f"blacklist_{version}.json")
    cruiser = load_json(d / "cruiser_good_indices.json")
    for name, obj in (("pools", pools), ("counts", counts), ("start", start), ("cruiser", cruiser)):
        if not isinstance(obj, dict):
            raise DataError(f"{d}: the {name} file is not a JSON object")
    released_path = d / f"cifar10.1_{version}_ti_indices.json"
    return {
        "pools": pools,
        "counts": counts,
        "start": start,
        "blacklist": blacklist,
        "pool_overrides": {(cls, "cruiser"): ids for cls, ids in cruiser.items()},
        "empty_start": [("ship", "cruiser")],
        "starting_from": "cifar10.1_v4_ti_indices_per_keyword.json",
        "released": load_pairs_json(released_path) if released_path.is_file() else None,
    }
