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

import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..files import (
    DataError,
    check_unique_ids,
    load_json,
)
from .annotations import read_table  # the sampler's one table reader (file formats, line numbers)
from .keyword_counts import cifar101_keyword_inputs, count_matches, keyword_counts, load_pairs_json
from .sample_outputs import (
    EXCLUSION_REASONS,
    HISTOGRAM_BINS,
    SampleResult,
    _native,
    histogram_bins,
    largest_remainder,
    plot_audit,
    write_outputs,
)

__all__ = [
    "HISTOGRAM_BINS",
    "EXCLUSION_REASONS",
    "SampleResult",
    "histogram_bins",
    "largest_remainder",
    "target_histograms",
    "shift_histogram",
    "shifted_targets",
    "read_targets",
    "screen_candidates",
    "matched_frequency",
    "threshold",
    "top_images",
    "keyword_counts",
    "read_manifest_pairs",
    "write_outputs",
    "plot_audit",
    "count_matches",
    "cifar101_keyword_inputs",
    "load_pairs_json",
]


# ------------------------------------------------------------------------------------------ helpers


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


def shift_histogram(hist, strength: float) -> np.ndarray:
    """Move ``strength`` of every bin's mass one bin down (bin 0 keeps its own), exactly.

    Returns integer weights (the histogram times 10**6), to be scaled with
    :func:`generalization.sampler.strategies.largest_remainder`; ``strength = 0`` gives the histogram times 10**6.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"shift strength must lie in [0, 1], got {strength}")
    h = np.asarray(hist, dtype=np.int64)
    scale = 10**6
    moved = int(round(strength * scale))
    out = h * (scale - moved)
    out[:-1] += h[1:] * moved
    out[0] += h[0] * moved
    return out


def shifted_targets(
    frequencies: pd.DataFrame,
    per_class: int,
    shift: float | str = 0.0,
    *,
    edges: Sequence[float] = HISTOGRAM_BINS,
) -> pd.DataFrame:
    """Per-class target histograms: the set's own histogram with a named shift, scaled to ``per_class``.

    ``shift`` is a strength p in [0, 1] or ``"down:p"``: move p of each bin's mass one bin down
    (:func:`shift_histogram`). ``frequencies`` has ``class`` and ``selection_frequency``. Returns a class
    x bin DataFrame for :func:`generalization.sampler.strategies.matched_frequency`.
    """
    if isinstance(shift, str):
        kind, _, value = shift.partition(":")
        if kind != "down" or not value:
            raise ValueError(f"unknown shift {shift!r} (use 'down:P', e.g. 'down:0.2')")
        shift = float(value)
    f = frequencies[frequencies["selection_frequency"].notna()]
    nb = len(edges) + 1
    bins = histogram_bins(f["selection_frequency"].to_numpy(), edges)
    hist = pd.crosstab(f["class"].to_numpy(), bins).reindex(columns=range(nb), fill_value=0).sort_index()
    rows = {cls: largest_remainder(shift_histogram(h.to_numpy(), float(shift)), per_class)
            for cls, h in hist.iterrows()}  # fmt: skip
    out = pd.DataFrame.from_dict(rows, orient="index", columns=list(range(nb))).astype(np.int64)
    out.index.name = "class"
    return out


def read_targets(path: str | os.PathLike, *, edges: Sequence[float] = HISTOGRAM_BINS) -> pd.DataFrame:
    """A MatchedFrequency target table: a ``class`` column, then one column per bin ``0`` … ``len(edges)`` of
    whole counts >= 0 (CSV, JSONL or Parquet, read like every sampler table: classes as text, so they match the
    candidates' classes). Returns counts indexed by class, one integer column per bin, in the file's order."""
    t = read_table(path)
    cols = [str(b) for b in range(len(edges) + 1)]
    if [c for c in t.columns if c != "line"] != ["class", *cols]:
        raise DataError(f"{path}: expected columns class, {', '.join(cols)} (target counts per bin)")
    if t["class"].duplicated().any():
        raise DataError(f"{path}: class {t['class'][t['class'].duplicated()].iloc[0]!r} is listed twice")
    counts = t[cols].apply(pd.to_numeric, errors="coerce")
    bad = counts.isna() | (counts < 0) | (counts != counts.round())
    if bad.any().any():
        line = int(t["line"][bad.any(axis=1)].iloc[0])
        raise DataError(f"{path}: line {line}: target counts must be whole numbers >= 0")
    counts.index = t["class"]
    counts.columns = list(range(len(cols)))
    return counts.astype(np.int64)


def _sorted_ids(ids) -> list:
    return sorted(ids, key=lambda x: (isinstance(x, str), x))


def read_manifest_pairs(path: str | os.PathLike) -> list[tuple[Any, Any]]:
    """The ordered ``[image id, class]`` pairs of a manifest (ours or an ImageNetV2 dataset JSON)."""
    m = load_json(path)
    try:
        pairs = [(a, b) for a, b in m["image_filenames"]]
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not a manifest with image_filenames [[id, class], ...] ({e})") from e
    check_unique_ids([a for a, _ in pairs], path)
    return pairs


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


# ------------------------------------------------------------------------------------------ outputs


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
