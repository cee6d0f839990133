"""Selection frequencies and worker quality, computed from the annotation tables that
:mod:`generalization.sampler.annotations` reads and validates.

The *selection frequency* of an (image, class) pair is the share of valid (Submitted or Approved)
assignments that selected the image when asked about that class, pooled over every task that showed it.
Worker quality is each worker's record on the control images; :func:`workers_below` is the optional cut
whose workers :func:`selection_frequencies` can leave out. :func:`selection_frequencies_from_counts` (from vote
counts) lives on the ground floor, :mod:`generalization.selection_frequency`, since the analysis uses it too;
it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..selection_frequency import selection_frequencies_from_counts  # re-exported
from .annotations import VALID_STATUSES

__all__ = [
    "selection_frequencies",
    "selection_frequencies_from_counts",
    "worker_quality",
    "workers_below",
]


# ------------------------------------------------------------------------------- selection frequency


def selection_frequencies(
    annotations: pd.DataFrame,
    *,
    min_annotations: int = 0,
    exclude_workers: Iterable[str] = (),
    include_controls: bool = False,
) -> pd.DataFrame:
    """Per (image, class): how many valid assignments saw it, how many selected it, and their ratio.

    Only assignments with status Submitted or Approved count; workers in ``exclude_workers`` (e.g. from
    :func:`workers_below`) are left out. Control rows (role positive / negative) are left out unless
    ``include_controls``, since a control image is shown under a class it may not belong to.

    Returns a DataFrame sorted by (class, image_id) with ``image_id``, ``class``, ``num_annotations``,
    ``num_selected``, ``selection_frequency`` and ``enough_annotations`` (``num_annotations >=
    min_annotations``). The frequency of an image with no valid annotation is NaN.
    """
    a = annotations
    valid = a["status"].isin(VALID_STATUSES) & ~a["worker_id"].isin(set(map(str, exclude_workers)))
    if not include_controls and "role" in a.columns:
        valid &= ~a["role"].isin(["positive", "negative"])
    keys = a[["image_id", "class"]].drop_duplicates()
    if not include_controls and "role" in a.columns:
        keys = a.loc[~a["role"].isin(["positive", "negative"]), ["image_id", "class"]].drop_duplicates()
    g = a[valid].groupby(["image_id", "class"], sort=True)["selected"].agg(["size", "sum"]).reset_index()
    out = keys.merge(g, on=["image_id", "class"], how="left").fillna({"size": 0, "sum": 0})
    out = out.rename(columns={"size": "num_annotations", "sum": "num_selected"})
    out["num_annotations"] = out["num_annotations"].astype(np.int64)
    out["num_selected"] = out["num_selected"].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["selection_frequency"] = np.where(
            out["num_annotations"] > 0, out["num_selected"] / out["num_annotations"].clip(lower=1), np.nan
        )
    out["enough_annotations"] = out["num_annotations"] >= int(min_annotations)
    return out.sort_values(["class", "image_id"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------- worker quality


def worker_quality(annotations: pd.DataFrame) -> pd.DataFrame:
    """Per worker, how they did on the control images of valid assignments.

    A positive control (an original test image of the task's class) should be selected; a negative
    control (an image of another class) should not. Returns, sorted by worker: ``num_assignments``,
    ``num_positive``, ``positive_selected``, ``positive_rate`` (share of positives selected),
    ``num_negative``, ``negative_selected``, ``negative_rate`` (share of negatives selected, lower is
    better) and ``control_accuracy`` (share of all controls answered correctly). Rates are NaN without
    controls.
    """
    a = annotations[annotations["status"].isin(VALID_STATUSES)]
    pos = a[a["role"] == "positive"].groupby("worker_id")["selected"].agg(["size", "sum"])
    neg = a[a["role"] == "negative"].groupby("worker_id")["selected"].agg(["size", "sum"])
    workers = sorted(set(a["worker_id"]))
    out = pd.DataFrame({"worker_id": workers})
    out["num_assignments"] = (
        a.groupby("worker_id")["assignment_id"].nunique().reindex(workers).fillna(0).to_numpy()
    )
    out["num_positive"] = pos["size"].reindex(workers).fillna(0).astype(np.int64).to_numpy()
    out["positive_selected"] = pos["sum"].reindex(workers).fillna(0).astype(np.int64).to_numpy()
    out["num_negative"] = neg["size"].reindex(workers).fillna(0).astype(np.int64).to_numpy()
    out["negative_selected"] = neg["sum"].reindex(workers).fillna(0).astype(np.int64).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["positive_rate"] = out["positive_selected"] / out["num_positive"].where(out["num_positive"] > 0)
        out["negative_rate"] = out["negative_selected"] / out["num_negative"].where(out["num_negative"] > 0)
        n = out["num_positive"] + out["num_negative"]
        correct = out["positive_selected"] + (out["num_negative"] - out["negative_selected"])
        out["control_accuracy"] = correct / n.where(n > 0)
    out["num_assignments"] = out["num_assignments"].astype(np.int64)
    return out[
        [
            "worker_id",
            "num_assignments",
            "num_positive",
            "positive_selected",
            "positive_rate",
            "num_negative",
            "negative_selected",
            "negative_rate",
            "control_accuracy",
        ]
    ]


def workers_below(quality: pd.DataFrame, min_control_accuracy: float, *, min_controls: int = 6) -> list[str]:
    """The optional worker cut: workers whose control accuracy is below ``min_control_accuracy``.

    Only workers with at least ``min_controls`` control answers are judged (one task holds six), so a
    worker is never cut on one or two answers. Returns the sorted worker ids to exclude.
    """
    n = quality["num_positive"] + quality["num_negative"]
    cut = (n >= min_controls) & (quality["control_accuracy"] < float(min_control_accuracy))
    return sorted(quality.loc[cut, "worker_id"].astype(str).tolist())
