"""Sampling strategies that turn annotated candidates into a new test set, deterministically.

Every strategy sorts each pool before drawing and uses one seeded :class:`random.Random`, so the same
inputs and seed give the same test set on any Python version and any ``PYTHONHASHSEED`` (no set is ever
iterated). Each returns a :class:`SampleResult` whose :func:`write_outputs` writes

* ``manifest.json``: field names as in the ImageNetV2 release's dataset JSONs (``sampling_function``,
  ``seed``, ``image_filenames`` = ordered ``[image id, class]`` pairs, ``is_valid``, the parameters);
* ``exclusions.csv`` (per class and reason, counts) and ``excluded_images.csv`` (one row per image);
* ``shortfalls.csv``: every (class, bin) that got fewer images than its target;
* ``audit.png``: target vs achieved selection-frequency histograms, overall and per class.

Strategies (see ``docs/sampler.md``): :func:`matched_frequency`, :func:`threshold`, :func:`top_images`
and :func:`keyword_counts` (CIFAR-10.1 style).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import (
    DataError,
    atomic_write_json,
    atomic_write_text,
    csv_text,
    load_json,
    save_figure,
)

__all__ = [
    "HISTOGRAM_BINS",
    "EXCLUSION_REASONS",
    "SampleResult",
    "histogram_bins",
    "largest_remainder",
    "target_histograms",
    "screen_candidates",
    "matched_frequency",
    "threshold",
    "top_images",
    "keyword_counts",
    "read_manifest_pairs",
    "write_outputs",
    "plot_audit",
    "count_matches",
]

HISTOGRAM_BINS = (0.2, 0.4, 0.6, 0.8)
# in the order a reason is attributed when several apply (the original pipeline's order)
EXCLUSION_REASONS = (
    "blacklisted",
    "too_few_annotations",
    "below_threshold",
    "near_duplicate",
    "not_reviewed",
)


# ------------------------------------------------------------------------------------------ helpers


def histogram_bins(
    freqs: Sequence[float] | np.ndarray, edges: Sequence[float] = HISTOGRAM_BINS
) -> np.ndarray:
    """Bin index of each selection frequency: bins split at ``edges``; a value on an edge goes to the upper
    bin (0.2 is in bin 1 of 0…4 with the default edges). NaN is an error."""
    f = np.asarray(freqs, dtype=np.float64)
    if np.isnan(f).any():
        raise DataError("selection frequencies contain NaN (images without annotations)")
    return np.searchsorted(np.asarray(edges, dtype=np.float64), f, side="right").astype(np.int64)


def largest_remainder(counts: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
    """Scale a histogram of counts to ``size`` items by the largest-remainder method.

    Each bin gets ``floor(count * size / total)``; the items left over go to the bins with the largest
    remainders, ties to the higher bin. Exact integer arithmetic (no float rounding).
    """
    c = np.asarray(counts, dtype=np.int64)
    total = int(c.sum())
    if total <= 0:
        raise DataError("cannot scale an empty histogram")
    q, r = np.divmod(c * int(size), total)
    left = int(size) - int(q.sum())
    order = sorted(range(len(c)), key=lambda b: (-int(r[b]), -b))
    for b in order[:left]:
        q[b] += 1
    return q


def target_histograms(
    original: pd.DataFrame,
    per_class: int | Mapping[Any, int],
    *,
    edges: Sequence[float] = HISTOGRAM_BINS,
    min_annotations: int = 0,
) -> pd.DataFrame:
    """Per class, the original test images' selection-frequency histogram scaled to the new per-class size.

    ``original`` has ``class`` and ``selection_frequency`` (and ``num_annotations`` for
    ``min_annotations``). Returns a DataFrame indexed by class (sorted) with one integer column per bin.
    """
    o = original
    if min_annotations:
        o = o[o["num_annotations"] >= min_annotations]
    o = o[o["selection_frequency"].notna()]
    nb = len(edges) + 1
    bins = histogram_bins(o["selection_frequency"].to_numpy(), edges)
    hist = pd.crosstab(o["class"].to_numpy(), bins).reindex(columns=range(nb), fill_value=0).sort_index()
    rows = {}
    for cls, h in hist.iterrows():
        k = per_class[cls] if isinstance(per_class, Mapping) else per_class
        rows[cls] = largest_remainder(h.to_numpy(), int(k))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(range(nb))).astype(np.int64)
    out.index.name = "class"
    return out


def _native(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _sorted_ids(ids) -> list:
    return sorted(ids, key=lambda x: (isinstance(x, str), x))


def read_manifest_pairs(path: str | os.PathLike) -> list[tuple[Any, Any]]:
    """The ordered ``[image id, class]`` pairs of a manifest (ours or an ImageNetV2 dataset JSON)."""
    m = load_json(path)
    try:
        return [(a, b) for a, b in m["image_filenames"]]
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not a manifest with image_filenames [[id, class], ...] ({e})") from e


# ---------------------------------------------------------------------------------------- screening


def screen_candidates(
    candidates: pd.DataFrame,
    *,
    exclusions: pd.DataFrame | None = None,
    blacklist: Sequence = (),
    min_annotations: int = 0,
    threshold: float | None = None,
    class_thresholds: Mapping[Any, float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split candidates into usable ones and excluded ones with one reason each.

    ``exclusions`` is a table of ``image_id``, ``reason`` (optionally ``class``) from elsewhere (e.g.
    ``near_duplicate`` or ``not_reviewed`` from the near-duplicate review); ``blacklist`` lists image ids
    excluded as ``blacklisted``. Computed here: ``too_few_annotations`` (fewer than ``min_annotations``
    or no annotation at all) and, with a threshold, ``below_threshold``. When several reasons apply, the
    first in :data:`EXCLUSION_REASONS` order is reported (then other given reasons, alphabetically).
    """
    for col in ("image_id", "class", "selection_frequency"):
        if col not in candidates.columns:
            raise DataError(f"candidate table lacks column {col!r}")
    c = candidates.reset_index(drop=True)
    dup = c.duplicated(["image_id", "class"])
    if dup.any():
        raise DataError(
            f"candidate table has duplicate (image_id, class) rows, e.g. {c[dup].iloc[0].tolist()[:2]}"
        )
    n = len(c)
    flags: dict[str, np.ndarray] = {}
    flags["blacklisted"] = (
        c["image_id"].isin(list(blacklist)).to_numpy() if len(blacklist) else np.zeros(n, bool)
    )
    nann = c["num_annotations"].to_numpy() if "num_annotations" in c.columns else None
    if min_annotations and nann is None:
        raise DataError("min_annotations needs a num_annotations column")
    freq = c["selection_frequency"].to_numpy(dtype=np.float64)
    few = np.isnan(freq)
    if nann is not None:
        few |= nann.astype(np.float64) < min_annotations
    flags["too_few_annotations"] = few
    if threshold is not None or class_thresholds:
        class_thresholds = class_thresholds or {}
        tau = c["class"].map(lambda cls: class_thresholds.get(cls, threshold)).astype(np.float64).to_numpy()
        with np.errstate(invalid="ignore"):
            flags["below_threshold"] = ~np.isnan(freq) & ~np.isnan(tau) & (freq < tau)
    extra: dict[int, set] = {}
    if exclusions is not None and len(exclusions):
        if "image_id" not in exclusions.columns or "reason" not in exclusions.columns:
            raise DataError("exclusion table needs columns image_id and reason")
        by_image: dict[Any, set] = {}
        by_pair: dict[tuple, set] = {}
        ex_cls = exclusions["class"] if "class" in exclusions.columns else [None] * len(exclusions)
        for im, reason, cls in zip(
            exclusions["image_id"], exclusions["reason"].astype(str), ex_cls, strict=True
        ):
            if cls is not None and cls != "" and not (isinstance(cls, float) and np.isnan(cls)):
                by_pair.setdefault((im, cls), set()).add(reason)
            else:
                by_image.setdefault(im, set()).add(reason)
        for i, (im, cls) in enumerate(zip(c["image_id"], c["class"], strict=True)):
            rs = by_image.get(im, set()) | by_pair.get((im, cls), set())
            if rs:
                extra[i] = rs
    rank = {r: k for k, r in enumerate(EXCLUSION_REASONS)}
    first = np.full(n, "", dtype=object)
    for i, rs in extra.items():
        first[i] = min(rs, key=lambda r: (rank.get(r, len(rank)), r))
    # the computed reasons, in reverse priority so that the earliest reason wins
    for reason in reversed(EXCLUSION_REASONS):
        if reason in flags:
            mask = flags[reason]
            keep_given = np.array(
                [
                    first[i] != "" and rank.get(first[i], len(rank)) < rank[reason]
                    for i in np.flatnonzero(mask)
                ],
                dtype=bool,
            )
            idx = np.flatnonzero(mask)[~keep_given] if len(keep_given) else np.flatnonzero(mask)
            first[idx] = reason
    c = c.assign(_reason=first)
    ok = c[c["_reason"] == ""].drop(columns="_reason").reset_index(drop=True)
    excl = c[c["_reason"] != ""].rename(columns={"_reason": "reason"})
    excl = excl[["image_id", "class", "reason", "selection_frequency"]].reset_index(drop=True)
    return ok, excl


# ------------------------------------------------------------------------------------------ results


@dataclass
class SampleResult:
    """What a sampling run produced. ``selected`` has ``image_id``, ``class``, ``selection_frequency``,
    ``bin``, ``carried`` and ``upward`` (drawn from a higher bin); ``shortfalls`` one row per (class,
    bin) that missed its target (``bin`` = -1 for strategies without bins)."""

    manifest: dict
    selected: pd.DataFrame
    exclusions: pd.DataFrame
    shortfalls: pd.DataFrame
    targets: pd.DataFrame | None = None  # class x bin target counts (MatchedFrequency)
    eligible: pd.DataFrame | None = None  # the usable candidates (for the audit figure)
    edges: tuple = HISTOGRAM_BINS
    extra: dict = field(default_factory=dict)

    @property
    def is_valid(self) -> bool:
        return bool(self.manifest["is_valid"])

    def exclusion_summary(self) -> pd.DataFrame:
        """Per class, how many candidates each reason excluded (columns in :data:`EXCLUSION_REASONS`
        order, then any other reason)."""
        e = self.exclusions
        others = sorted(set(e["reason"]) - set(EXCLUSION_REASONS))
        cols = list(EXCLUSION_REASONS) + others
        if len(e) == 0:
            return pd.DataFrame(columns=["class", *cols])
        t = pd.crosstab(e["class"], e["reason"]).reindex(columns=cols, fill_value=0)
        t = t.sort_index().reset_index()
        t.columns.name = None
        return t


def _finish(rng: random.Random, pairs: list, shuffle: bool) -> list:
    pairs = [[_native(a), _native(b)] for a, b in pairs]
    if shuffle:
        rng.shuffle(pairs)
    return pairs


def _shortfall_frame(rows: list) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["class", "bin", "target", "achieved", "missing"])


def _carry(carry_over: Sequence | None) -> dict:
    by_class: dict[Any, list] = {}
    for im, cls in carry_over or []:
        by_class.setdefault(cls, []).append(im)
    return by_class


def _not_candidates(carry: dict, candidates: pd.DataFrame) -> pd.DataFrame:
    """Carried-over images that are no longer candidates of their class: excluded, said so."""
    known = set(zip(candidates["image_id"].tolist(), candidates["class"].tolist(), strict=True))
    rows = [
        (im, cls, "no_longer_candidate", np.nan)
        for cls in sorted(carry, key=str)
        for im in carry[cls]
        if (im, cls) not in known
    ]
    return pd.DataFrame(rows, columns=["image_id", "class", "reason", "selection_frequency"])


# -------------------------------------------------------------------------------- MatchedFrequency


def matched_frequency(
    candidates: pd.DataFrame,
    targets: pd.DataFrame,
    *,
    seed: int,
    edges: Sequence[float] = HISTOGRAM_BINS,
    upward_sampling: bool = False,
    carry_over: Sequence[tuple[Any, Any]] | None = None,
    starting_from: str | None = None,
    exclusions: pd.DataFrame | None = None,
    blacklist: Sequence = (),
    min_annotations: int = 0,
    shuffle: bool = True,
    parameters: Mapping[str, Any] | None = None,
) -> SampleResult:
    """MatchedFrequency: per class, draw images so their selection-frequency histogram equals a target.

    Parameters
    ----------
    candidates
        ``image_id``, ``class``, ``selection_frequency`` (+ ``num_annotations`` for ``min_annotations``).
    targets
        Class x bin target counts (e.g. :func:`target_histograms` of the original test set, or any other
        histogram); its index lists every class of the new set.
    seed
        Seeds the one random generator used for every draw and the final shuffle.
    upward_sampling
        When a bin has too few candidates, fill each missing slot from the nearest higher bin that has
        candidates left (never from a lower one); carried-over images are preferred there.
    carry_over
        ``[image id, class]`` pairs of a previous revision: those still usable are kept first (per bin, a
        random subset when more than the bin's target remain).
    exclusions, blacklist, min_annotations
        See :func:`screen_candidates`.
    shuffle
        Shuffle the final list (as the original did); otherwise classes in sorted order, bins ascending.

    Returns
    -------
    :class:`SampleResult`; ``is_valid`` is False when any target was missed.
    """
    nb = len(edges) + 1
    if list(targets.columns) != list(range(nb)):
        raise DataError(f"targets must have bin columns 0…{nb - 1}, got {list(targets.columns)}")
    rng = random.Random(seed)
    ok, excl = screen_candidates(
        candidates, exclusions=exclusions, blacklist=blacklist, min_annotations=min_annotations
    )
    carry = _carry(carry_over)
    excl = pd.concat([excl, _not_candidates(carry, candidates)], ignore_index=True) if carry else excl
    ok = ok.assign(bin=histogram_bins(ok["selection_frequency"].to_numpy(), edges))
    # plain Python containers from here on: pandas per-class groupby is slow for 1,000 classes
    keys = list(zip(ok["image_id"].tolist(), ok["class"].tolist(), strict=True))
    freq_of = dict(zip(keys, ok["selection_frequency"].tolist(), strict=True))
    bin_of = dict(zip(keys, ok["bin"].tolist(), strict=True))
    by_class: dict[Any, list[list]] = {}
    for (im, cls), b in bin_of.items():
        if cls not in by_class:
            by_class[cls] = [[] for _ in range(nb)]
        by_class[cls][b].append(im)
    pairs, sel_rows, short = [], [], []
    target_of = dict(zip(targets.index.tolist(), targets.to_numpy(dtype=np.int64).tolist(), strict=True))
    for cls in sorted(target_of, key=lambda x: (isinstance(x, str), x)):
        target = target_of[cls]
        class_bins = by_class.get(cls, [[] for _ in range(nb)])
        prev = [im for im in carry.get(cls, []) if (im, cls) in bin_of]
        taken: list[list] = [[] for _ in range(nb)]  # (image, carried, upward) per target bin
        for b in range(nb):
            prev_b = [im for im in prev if bin_of[(im, cls)] == b]
            if len(prev_b) > target[b]:
                prev_b = rng.sample(prev_b, target[b])
            taken[b] = [(im, True, False) for im in prev_b]
        used = {im for b in range(nb) for im, _, _ in taken[b]}
        pools = [_sorted_ids(im for im in class_bins[b] if im not in used) for b in range(nb)]
        for b in range(nb):
            need = target[b] - len(taken[b])
            if need <= 0:
                continue
            if need >= len(pools[b]):
                draw, pools[b] = pools[b], []
            else:
                draw = rng.sample(pools[b], need)
                drawn = set(draw)
                pools[b] = [im for im in pools[b] if im not in drawn]
            taken[b] += [(im, False, False) for im in draw]
        if upward_sampling:
            prev_set = set(carry.get(cls, []))
            for b in range(nb):
                for _ in range(target[b] - len(taken[b])):
                    for nxt in range(b + 1, nb):
                        if not pools[nxt]:
                            continue
                        from_prev = [im for im in pools[nxt] if im in prev_set]
                        im = from_prev[0] if from_prev else rng.sample(pools[nxt], 1)[0]
                        pools[nxt] = [x for x in pools[nxt] if x != im]
                        taken[b].append((im, im in prev_set, True))
                        break
        for b in range(nb):
            if len(taken[b]) < target[b]:
                short.append((cls, b, target[b], len(taken[b]), target[b] - len(taken[b])))
            for im, carried, upward in taken[b]:
                pairs.append((im, cls))
                sel_rows.append((im, cls, freq_of[(im, cls)], bin_of[(im, cls)], carried, upward))
    shortfalls = _shortfall_frame(short)
    ordered = _finish(rng, pairs, shuffle)
    manifest = {
        "sampling_function": "matched_frequency",
        "target_size": int(targets.to_numpy().sum()),
        "num_images": len(ordered),
        "histogram_bins": [float(e) for e in edges],
        "target_histograms": {str(c): t for c, t in target_of.items()},
        "min_num_annotations": int(min_annotations),
        "allow_upward_sampling": bool(upward_sampling),
        "seed": int(seed),
        "starting_from": starting_from,
        "image_filenames": ordered,
        "is_valid": len(shortfalls) == 0,
        "shortfalls": {
            str(c): int(m) for c, m in shortfalls.groupby("class", sort=True)["missing"].sum().items()
        },
        **dict(parameters or {}),
    }
    selected = pd.DataFrame(
        sel_rows, columns=["image_id", "class", "selection_frequency", "bin", "carried", "upward"]
    )
    return SampleResult(
        manifest, selected, excl, shortfalls, targets=targets, eligible=ok, edges=tuple(edges)
    )


# ------------------------------------------------------------------------------ Threshold, TopImages


def _per_class(per_class: int | Mapping, classes: Sequence) -> dict:
    if isinstance(per_class, Mapping):
        return {c: int(per_class[c]) for c in classes}
    return {c: int(per_class) for c in classes}


def threshold(
    candidates: pd.DataFrame,
    per_class: int | Mapping[Any, int],
    tau: float,
    *,
    seed: int,
    class_thresholds: Mapping[Any, float] | None = None,
    classes: Sequence | None = None,
    carry_over: Sequence[tuple[Any, Any]] | None = None,
    starting_from: str | None = None,
    exclusions: pd.DataFrame | None = None,
    blacklist: Sequence = (),
    min_annotations: int = 0,
    shuffle: bool = True,
    parameters: Mapping[str, Any] | None = None,
) -> SampleResult:
    """Threshold(τ): per class, ``per_class`` random candidates with selection frequency ≥ τ
    (``class_thresholds`` overrides τ per class). Still-usable carried-over images are kept first (a
    random subset if more than ``per_class`` remain). ``classes`` (default: those of the candidates)
    lists every class of the new set."""
    rng = random.Random(seed)
    ok, excl = screen_candidates(
        candidates,
        exclusions=exclusions,
        blacklist=blacklist,
        min_annotations=min_annotations,
        threshold=tau,
        class_thresholds=class_thresholds,
    )
    carry = _carry(carry_over)
    excl = pd.concat([excl, _not_candidates(carry, candidates)], ignore_index=True) if carry else excl
    classes = _sorted_ids(set(candidates["class"]) if classes is None else classes)
    k = _per_class(per_class, classes)
    keys = list(zip(ok["image_id"].tolist(), ok["class"].tolist(), strict=True))
    okset = set(keys)
    freq_of = dict(zip(keys, ok["selection_frequency"].tolist(), strict=True))
    by_class: dict[Any, list] = {}
    for im, cls in keys:
        by_class.setdefault(cls, []).append(im)
    by_class = {cls: _sorted_ids(ims) for cls, ims in by_class.items()}
    pairs, sel_rows, short = [], [], []
    for cls in classes:
        prev = [im for im in carry.get(cls, []) if (im, cls) in okset]
        if len(prev) > k[cls]:
            prev = rng.sample(prev, k[cls])
        prevset = set(prev)
        pool = [im for im in by_class.get(cls, []) if im not in prevset]
        need = k[cls] - len(prev)
        draw = list(pool) if need >= len(pool) else rng.sample(pool, need)
        chosen = [(im, True) for im in prev] + [(im, False) for im in draw]
        if len(chosen) < k[cls]:
            short.append((cls, -1, k[cls], len(chosen), k[cls] - len(chosen)))
        for im, carried in chosen:
            pairs.append((im, cls))
            sel_rows.append((im, cls, freq_of[(im, cls)], carried))
    return _simple_result(
        "threshold",
        rng,
        pairs,
        sel_rows,
        short,
        excl,
        ok,
        seed,
        shuffle,
        k,
        min_annotations,
        starting_from,
        {
            "selection_frequency_threshold": float(tau),
            "class_thresholds": {
                str(c): float(t) for c, t in sorted((class_thresholds or {}).items(), key=lambda x: str(x[0]))
            },
            **dict(parameters or {}),
        },
    )


def top_images(
    candidates: pd.DataFrame,
    per_class: int | Mapping[Any, int],
    *,
    seed: int | None = None,
    classes: Sequence | None = None,
    carry_over: Sequence[tuple[Any, Any]] | None = None,
    starting_from: str | None = None,
    exclusions: pd.DataFrame | None = None,
    blacklist: Sequence = (),
    min_annotations: int = 0,
    shuffle: bool = True,
    parameters: Mapping[str, Any] | None = None,
) -> SampleResult:
    """TopImages: per class the ``per_class`` candidates with the highest selection frequency; ties go to
    more annotations, then to carried-over images, then to the smaller image id. No randomness except the
    final shuffle (skipped when ``seed`` is None)."""
    rng = random.Random(seed)
    ok, excl = screen_candidates(
        candidates, exclusions=exclusions, blacklist=blacklist, min_annotations=min_annotations
    )
    carry = _carry(carry_over)
    excl = pd.concat([excl, _not_candidates(carry, candidates)], ignore_index=True) if carry else excl
    classes = _sorted_ids(set(candidates["class"]) if classes is None else classes)
    k = _per_class(per_class, classes)
    has_n = "num_annotations" in ok.columns
    pairs, sel_rows, short = [], [], []
    by_class: dict[Any, list] = {}
    nann = ok["num_annotations"].tolist() if has_n else [0] * len(ok)
    for im, cls, f, n in zip(
        ok["image_id"].tolist(), ok["class"].tolist(), ok["selection_frequency"].tolist(), nann, strict=True
    ):
        by_class.setdefault(cls, []).append((im, f, n))
    for cls in classes:
        prevset = set(carry.get(cls, []))
        rows = list(by_class.get(cls, []))
        rows.sort(key=lambda r: (-r[1], -int(r[2]), r[0] not in prevset, (isinstance(r[0], str), r[0])))
        chosen = rows[: k[cls]]
        if len(chosen) < k[cls]:
            short.append((cls, -1, k[cls], len(chosen), k[cls] - len(chosen)))
        for im, f, _ in chosen:
            pairs.append((im, cls))
            sel_rows.append((im, cls, f, im in prevset))
    return _simple_result(
        "top_images",
        rng,
        pairs,
        sel_rows,
        short,
        excl,
        ok,
        seed,
        shuffle and seed is not None,
        k,
        min_annotations,
        starting_from,
        dict(parameters or {}),
    )


def _simple_result(
    name, rng, pairs, sel_rows, short, excl, ok, seed, shuffle, k, min_annotations, starting_from, params
) -> SampleResult:
    shortfalls = _shortfall_frame(short)
    ordered = _finish(rng, pairs, shuffle)
    sizes = set(k.values())
    manifest = {
        "sampling_function": name,
        "target_size": int(sum(k.values())),
        "num_images": len(ordered),
        "num_per_class": sizes.pop() if len(sizes) == 1 else {str(c): v for c, v in k.items()},
        "min_num_annotations": int(min_annotations),
        "seed": None if seed is None else int(seed),
        "starting_from": starting_from,
        "image_filenames": ordered,
        "is_valid": len(shortfalls) == 0,
        "shortfalls": {
            str(c): int(m) for c, m in shortfalls.groupby("class", sort=True)["missing"].sum().items()
        },
        **params,
    }
    selected = pd.DataFrame(sel_rows, columns=["image_id", "class", "selection_frequency", "carried"])
    freqs = selected["selection_frequency"].to_numpy(dtype=np.float64)
    selected["bin"] = histogram_bins(freqs) if len(freqs) else np.zeros(0, dtype=np.int64)
    selected["upward"] = False
    return SampleResult(manifest, selected, excl, shortfalls, targets=None, eligible=ok)


# ---------------------------------------------------------------------------------- KeywordCounts


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


# ------------------------------------------------------------------------------------------ outputs


def write_outputs(result: SampleResult, out_dir: str | os.PathLike, *, figure: bool = True) -> list[Path]:
    """Write ``manifest.json``, ``exclusions.csv``, ``excluded_images.csv``, ``shortfalls.csv`` and
    (with ``figure``; not for KeywordCounts) ``audit.png`` into ``out_dir``. Returns the paths."""
    out = Path(out_dir)
    # the manifest is written without timestamps or user names, so reruns are byte-identical
    written = [atomic_write_json(out / "manifest.json", result.manifest)]
    if result.manifest["sampling_function"] != "keyword_counts":
        written.append(
            atomic_write_text(
                out / "exclusions.csv", csv_text(result.exclusion_summary())
            )
        )
    written.append(
        atomic_write_text(
            out / "excluded_images.csv", csv_text(result.exclusions)
        )
    )
    written.append(
        atomic_write_text(out / "shortfalls.csv", csv_text(result.shortfalls))
    )
    if figure and result.manifest["sampling_function"] != "keyword_counts":
        written.append(plot_audit(result, out / "audit.png"))
    return written


def _hist(result: SampleResult, df: pd.DataFrame, nb: int) -> pd.DataFrame:
    if len(df) == 0:
        return pd.DataFrame(columns=range(nb), dtype=np.int64)
    b = histogram_bins(df["selection_frequency"].to_numpy(), result.edges)
    return pd.crosstab(df["class"].to_numpy(), b).reindex(columns=range(nb), fill_value=0)


def plot_audit(result: SampleResult, path: str | os.PathLike, *, max_classes: int = 12) -> Path:
    """Target vs achieved selection-frequency histograms: all classes pooled (left) and the classes that
    missed their target most (small multiples; the first classes when none missed).

    For MatchedFrequency the target is the target histogram; for Threshold and TopImages, which have no
    histogram target, the reference is the histogram of the usable candidates scaled to the per-class size.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = list(result.edges)
    nb = len(edges) + 1
    labels = (
        [f"<{edges[0]:g}"] + [f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(nb - 2)] + [f"≥{edges[-1]:g}"]
    )
    achieved = _hist(result, result.selected, nb)
    if result.targets is not None:
        target, ref_label = result.targets, "target"
    else:
        pool = _hist(result, result.eligible, nb)
        k = result.selected.groupby("class").size()
        per = result.manifest.get("num_per_class")
        rows = {}
        for cls, h in pool.iterrows():
            size = per if isinstance(per, int) else int(k.get(cls, 0))
            rows[cls] = largest_remainder(h.to_numpy(), size) if h.sum() else np.zeros(nb, dtype=np.int64)
        target = pd.DataFrame.from_dict(rows, orient="index", columns=range(nb))
        ref_label = "usable candidates (scaled)"
    classes = sorted(set(target.index) | set(achieved.index), key=lambda x: (isinstance(x, str), x))
    target = target.reindex(index=classes, fill_value=0)
    achieved = achieved.reindex(index=classes, fill_value=0)
    dev = (target - achieved).abs().sum(axis=1)
    missing = (
        result.shortfalls.groupby("class")["missing"].sum()
        if len(result.shortfalls)
        else pd.Series(dtype=np.int64)
    )
    miss = {c: int(missing.get(c, 0)) for c in classes}
    order = sorted(classes, key=lambda c: (-miss[c], -int(dev[c]), (isinstance(c, str), c)))
    shown = order[:max_classes]
    ncols = 4
    nrows = max(1, int(np.ceil(len(shown) / ncols)))
    fig = plt.figure(figsize=(4 + 2.6 * ncols, max(3.6, 2.2 * nrows)))
    gs = fig.add_gridspec(nrows, ncols + 2)
    ax = fig.add_subplot(gs[:, :2])
    x = np.arange(nb)
    w = 0.4
    ax.bar(x - w / 2, target.sum().to_numpy(), w, label=ref_label, color="#9ecae1", edgecolor="#3182bd")
    ax.bar(x + w / 2, achieved.sum().to_numpy(), w, label="achieved", color="#fdae6b", edgecolor="#e6550d")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlabel("selection frequency")
    ax.set_ylabel("images (count)")
    name = result.manifest["sampling_function"]
    n_short = sum(1 for c in classes if miss[c] > 0)
    off = f", {int(dev.gt(0).sum())} histograms off target" if result.targets is not None else ""
    ax.set_title(
        f"{name}: all {len(classes)} classes\n{int(achieved.to_numpy().sum())} of "
        f"{int(result.manifest['target_size'])} images, {n_short} classes short{off}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    for i, cls in enumerate(shown):
        a = fig.add_subplot(gs[i // ncols, 2 + i % ncols])
        a.bar(x - w / 2, target.loc[cls].to_numpy(), w, color="#9ecae1", edgecolor="#3182bd")
        a.bar(x + w / 2, achieved.loc[cls].to_numpy(), w, color="#fdae6b", edgecolor="#e6550d")
        a.set_xticks(x, [lb.replace("–", "–\n") for lb in labels], fontsize=6)
        a.tick_params(axis="y", labelsize=7)
        a.set_title(f"{str(cls)[:24]} (short {miss[cls]}, off {int(dev[cls])})", fontsize=8)
        if i % ncols == 0:
            a.set_ylabel("images", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def load_pairs_json(path: str | os.PathLike) -> list:
    """A JSON list (e.g. a blacklist or the released index list), checked to be a list."""
    v = load_json(path)
    if not isinstance(v, list):
        raise DataError(f"{path}: expected a JSON list, got {type(v).__name__}")
    return v


def dumps_manifest(manifest: dict) -> str:
    """The manifest as written (sorted keys, 2-space indent), for comparisons."""
    return json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"


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


def read_frequency_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a candidate table with selection frequencies (CSV / JSONL / Parquet): ``image_id``, ``class``,
    ``selection_frequency`` and optionally ``num_annotations`` (as written by ``generalization
    selection-frequency``). Ids stay text; unreadable numbers are errors naming their lines."""
    from .annotations import read_table

    df = read_table(path)
    for col in ("image_id", "class", "selection_frequency"):
        if col not in df.columns:
            raise DataError(f"{path}: lacks column {col!r}")
    for col in ("selection_frequency", "num_annotations"):
        if col not in df.columns:
            continue
        vals = pd.to_numeric(df[col].replace("", np.nan), errors="coerce")
        bad = vals.isna() & (df[col] != "") & (df[col].str.lower() != "nan")
        if bad.any():
            raise DataError(
                f"{path}: column {col!r} is not numeric on line(s) {df.loc[bad, 'line'].tolist()[:20]}"
            )
        if col == "selection_frequency":
            out_of_range = (vals < 0) | (vals > 1)
            if out_of_range.any():
                raise DataError(
                    f"{path}: selection_frequency outside [0, 1] on line(s) "
                    f"{df.loc[out_of_range, 'line'].tolist()[:20]}"
                )
        if col == "num_annotations":
            bad = vals.notna() & ((vals < 0) | (vals != vals.round()))
            if bad.any():
                raise DataError(
                    f"{path}: num_annotations must be a whole number >= 0, line(s) {df.loc[bad, 'line'].tolist()[:20]}"
                )
        df[col] = vals if col == "selection_frequency" else vals.fillna(0).astype(np.int64)
    empty = (df["image_id"].str.strip() == "") | (df["class"].str.strip() == "")
    if empty.any():
        raise DataError(f"{path}: empty image_id or class on line(s) {df.loc[empty, 'line'].tolist()[:20]}")
    return df
