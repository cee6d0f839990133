"""One row per (new test set, model): original and new top-1 and the gap with its interval.

Columns: :data:`GAP_COLUMNS` (percent and percentage points).

The pairs are every (original, new) pair in the table, the built-in ones and those declared by sampler
manifests (:func:`generalization.test_sets.pairs`); the numbers are :func:`trends.paired_accuracies`'s
(Clopper-Pearson accuracies, Newcombe's interval for the gap of two independent proportions).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..files import DataError
from . import trends

__all__ = ["GAP_COLUMNS", "gap_table"]

GAP_COLUMNS = ["variant", "model", "n_original", "original_top1", "n_new", "new_top1", "gap", "gap_ci_low",
               "gap_ci_high"]


def gap_table(table: pd.DataFrame, *, variants: Mapping[str, str] | None = None, level: float = 0.95,
              sources: list[str] | None = None) -> pd.DataFrame:
    """Original vs new top-1 (percent) and the gap (original - new, points) with its ``level`` interval.

    ``variants`` maps a new test set to a label for the ``variant`` column (default: its name); with
    ``variants`` given only those test sets are kept, in the mapping's order. ``sources`` keeps only those
    sources. Models without a new accuracy are left out.
    """
    rows = []
    for original, new in trends.test_set_pairs(table):
        if variants is not None and new not in variants:
            continue
        p = trends.paired_accuracies(table, original, new, level)
        p = p[p["new"].notna()]
        if sources is not None:
            p = p[p["source"].isin(sources)]
        rows.append(pd.DataFrame({
            "variant": (variants or {}).get(new, new), "original_test_set": original, "new_test_set": new,
            "source": p["source"], "model": p["model"], "n_original": p["n_orig"].astype("int64"),
            "original_top1": p["orig"], "n_new": p["n_new"].astype("int64"), "new_top1": p["new"],
            "gap": p["gap"], "gap_ci_low": p["gap_ci_low"], "gap_ci_high": p["gap_ci_high"],
        }))  # fmt: skip
    rows = [r for r in rows if len(r)]
    if variants is not None:
        missing = [v for v in variants if v not in {r["new_test_set"].iloc[0] for r in rows}]
        if missing:
            raise DataError(f"no paired accuracies for {missing}: are they in the store, and is their "
                            "original evaluated too?")
        order = {v: i for i, v in enumerate(variants)}
        rows.sort(key=lambda r: order[r["new_test_set"].iloc[0]])
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=GAP_COLUMNS)
    dup = out[out.duplicated(["variant", "model"], keep=False)]
    if len(dup):
        raise DataError(f"model {dup['model'].iloc[0]!r} has rows from several sources ({sorted(set(dup['source']))}) "
                        f"on {dup['new_test_set'].iloc[0]!r}; keep one with sources=[...] (--source)")
    return out[GAP_COLUMNS].reset_index(drop=True)
