"""Candidates and crowd annotations as plain tables: read, expanded to the long format and validated.

Tables are read from CSV, JSONL or Parquet into pandas. Two annotation layouts are accepted:

* the **long format**: one row per (assignment, image) with columns ``worker_id``, ``task_id``,
  ``image_id``, ``class``, ``selected`` (yes/no, true/false, 1/0) and optionally ``assignment_id``
  (default ``<worker_id>:<task_id>``), ``status`` (default ``Submitted``) and ``role``
  (``candidate`` / ``positive`` / ``negative``);
* **Amazon MTurk batch results** (``Input.*`` / ``Answer.*`` columns) of the task page written by
  :mod:`generalization.sampler.tasks`: one row per assignment, expanded to the long format with the task table.

Bad rows (unknown image, unknown class, duplicate assignment, unreadable values) are never dropped
silently: the loaders return them in a *problems* table with their line number in the file (the header
is line 1; for JSONL the first record is line 1) and the reason.

Only assignments whose status is in :data:`VALID_STATUSES` (Submitted or Approved) count towards the
selection frequencies and worker quality that :mod:`generalization.sampler.frequencies` computes from these
tables.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import DataError

__all__ = [
    "VALID_STATUSES",
    "read_table",
    "check_task_table",
    "load_candidates",
    "load_annotations",
    "read_long_annotations",
    "read_mturk_results",
    "read_task_records",
    "validate_annotations",
]

VALID_STATUSES = ("Submitted", "Approved")
ANNOTATION_COLUMNS = [
    "worker_id",
    "assignment_id",
    "task_id",
    "image_id",
    "class",
    "selected",
    "status",
    "role",
    "line",
]
PROBLEM_COLUMNS = ["file", "line", "reason", "image_id", "class", "assignment_id"]
_TRUE = {"1", "true", "yes", "y", "on", "selected"}
_FALSE = {"0", "false", "no", "n", "off", "", "not_selected"}


# ------------------------------------------------------------------------------------------- tables


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV, JSONL (``.jsonl`` / ``.ndjson``) or Parquet file into a DataFrame of strings.

    Every column is read as text (ids such as ``007`` keep their zeros); a ``line`` column gives each
    row's line number in the file (header = line 1 for CSV; record = line for JSONL; row + 1 for Parquet).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz", ".tsv"):
            df = pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if suffix == ".tsv" else ",")
            df["line"] = np.arange(len(df), dtype=np.int64) + 2
        elif suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
            rows, lines = [], []
            with open(path, encoding="utf-8") as f:
                for i, raw in enumerate(f, start=1):
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}: line {i}: not valid JSON ({e})") from e
                    if not isinstance(obj, dict):
                        raise DataError(f"{path}: line {i}: expected a JSON object, got {type(obj).__name__}")
                    rows.append(obj)
                    lines.append(i)
            df = pd.DataFrame(rows)
            for col in df.columns:
                df[col] = df[col].map(_to_text)
            df["line"] = np.asarray(lines, dtype=np.int64)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
            for col in df.columns:
                df[col] = df[col].map(_to_text)
            df["line"] = np.arange(len(df), dtype=np.int64) + 1
        else:
            raise DataError(f"{path}: unknown table format {suffix!r} (use .csv, .jsonl or .parquet)")
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: cannot read table ({e})") from e
    df.attrs["file"] = str(path)
    return df


def _to_text(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, np.ndarray):
        return json.dumps(v.tolist())
    return str(v)


def _as_frame(table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        df = table.copy()
        for col in df.columns:
            if col != "line":
                df[col] = df[col].map(_to_text)
        if "line" not in df.columns:
            df["line"] = np.arange(len(df), dtype=np.int64) + 2
        df.attrs.setdefault("file", "<DataFrame>")
        return df
    return read_table(table)


def _require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{df.attrs.get('file', '<table>')}: {what} table lacks column(s) {missing} "
            f"(has {[c for c in df.columns if c != 'line']})"
        )


def check_task_table(tasks: pd.DataFrame) -> pd.DataFrame:
    """The task table (``tasks.csv``) as text, checked: its columns, no empty ids, integer positions, no image
    twice in one task, one class per task."""
    file = tasks.attrs.get("file", "<tasks>")
    _require_columns(tasks, ["task_id", "class", "position", "image_id", "role", "image_class"], "task")
    t = tasks.copy()
    for col in ("task_id", "class", "image_id", "role", "image_class", "position"):
        t[col] = t[col].map(_to_text)
    line = t["line"] if "line" in t.columns else pd.Series(np.arange(len(t)) + 2, index=t.index)
    empty = (t[["task_id", "class", "image_id"]] == "").any(axis=1)
    if empty.any():
        raise DataError(f"{file}: empty task_id, class or image_id on line(s) {line[empty].tolist()[:20]}")
    pos = pd.to_numeric(t["position"], errors="coerce")
    bad = pos.isna() | (pos < 0) | (pos != pos.round())
    if bad.any():
        raise DataError(f"{file}: position must be a non-negative integer, line(s) {line[bad].tolist()[:20]}")
    roles = ~t["role"].isin(["candidate", "positive", "negative", ""])
    if roles.any():
        raise DataError(f"{file}: role must be candidate, positive or negative, line(s) {line[roles].tolist()[:20]}")
    dup = t.duplicated(["task_id", "image_id"])
    if dup.any():
        raise DataError(f"{file}: an image listed twice in one task, line(s) {line[dup].tolist()[:20]}")
    classes = t.groupby("task_id")["class"].nunique()
    if (classes > 1).any():
        raise DataError(f"{file}: task {classes[classes > 1].index[0]!r} has more than one class")
    t.attrs["file"] = file
    return t


def load_candidates(table: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Load a candidate table: one row per (image, class).

    Required columns: ``image_id``, ``class``. Optional: ``keyword`` (search keyword or query),
    ``source_id`` (e.g. the Flickr photo id), ``date``, ``path`` or ``url``; any other column is kept.
    Empty ids and duplicate (image, class) rows are errors, reported with their line numbers.
    """
    df = _as_frame(table)
    _require_columns(df, ["image_id", "class"], "candidate")
    file = df.attrs["file"]
    bad = df[(df["image_id"] == "") | (df["class"] == "")]
    if len(bad):
        raise DataError(f"{file}: empty image_id or class on line(s) {bad['line'].tolist()[:20]}")
    dup = df[df.duplicated(["image_id", "class"], keep="first")]
    if len(dup):
        raise DataError(f"{file}: duplicate (image_id, class) on line(s) {dup['line'].tolist()[:20]}")
    out = df.sort_values(["class", "image_id"], kind="stable").reset_index(drop=True)
    out.attrs["file"] = file
    return out


# --------------------------------------------------------------------------------------- annotations


def _parse_bool(series: pd.Series) -> pd.Series:
    s = series.str.strip().str.lower()
    out = pd.Series(pd.NA, index=series.index, dtype="boolean")
    out[s.isin(_TRUE)] = True
    out[s.isin(_FALSE)] = False
    return out


def read_long_annotations(table: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read annotations in the long format (see the module docstring).

    Returns ``(annotations, problems)``; rows whose ``selected`` value cannot be read go to ``problems``.
    """
    df = _as_frame(table)
    file = df.attrs["file"]
    _require_columns(df, ["worker_id", "task_id", "image_id", "class", "selected"], "annotation")
    if "assignment_id" not in df.columns:
        df["assignment_id"] = df["worker_id"] + ":" + df["task_id"]
    if "status" not in df.columns:
        df["status"] = "Submitted"
    if "role" not in df.columns:
        df["role"] = ""
    sel = _parse_bool(df["selected"])
    empty = (df[["worker_id", "task_id", "image_id", "class", "assignment_id"]].apply(lambda c: c.str.strip()) == "").any(
        axis=1
    )
    bad = sel.isna() | empty
    problems = pd.concat(
        [_problems(df[empty], file, "empty worker_id, task_id, image_id, class or assignment_id"),
         _problems(df[sel.isna() & ~empty], file, "unreadable 'selected' value")],
        ignore_index=True,
    )
    out = df[~bad].copy()
    out["selected"] = sel[~bad].astype(bool)
    out["status"] = out["status"].replace("", "Submitted")
    out = out[ANNOTATION_COLUMNS].reset_index(drop=True)
    out.attrs["file"] = file
    return out, problems


def _decode_task_b64(value: str) -> dict:
    return json.loads(base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8"))


def _id_list(value: object, what: str, *, allow_empty: bool = True) -> list[str]:
    """A JSON list of image ids (strings or integers), none empty, none twice; ValueError says what is wrong."""
    if not isinstance(value, list):
        raise ValueError(f"{what!r} must be a list of image ids, got {type(value).__name__} {str(value)[:40]!r}")
    if not value and not allow_empty:
        raise ValueError(f"{what!r} is empty")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (str, int)) or str(v).strip() == "":
            raise ValueError(f"{what!r} holds {v!r}, not an image id")
        out.append(str(v))
    seen: set[str] = set()
    dup = next((v for v in out if v in seen or seen.add(v)), None)
    if dup is not None:
        raise ValueError(f"{what!r} lists image {dup!r} twice")
    return out


def _text(value: object, what: str) -> str:
    """A non-empty string (or integer) field of a record."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise ValueError(f"{what!r} must be a non-empty string, got {value!r}")
    return str(value)


def _task_payload_images(payload: object) -> tuple[str, str, list[str]]:
    if not isinstance(payload, dict):
        raise ValueError("the task is not a JSON object")
    images = payload.get("images")
    if not isinstance(images, list) or not all(isinstance(im, dict) and "image_id" in im for im in images):
        raise ValueError("the task's 'images' must be a list of {image_id, url} objects")
    shown = _id_list([im["image_id"] for im in images], "images", allow_empty=False)
    return _text(payload.get("task_id"), "task_id"), _text(payload.get("class"), "class"), shown


def _parse_id_list(value: str) -> list[str]:
    value = value.strip()
    if not value:
        return []
    if value.startswith("["):
        return _id_list(json.loads(value), "Answer.selected")
    return _id_list([v.strip() for v in value.replace("|", ",").split(",") if v.strip()], "Answer.selected")


def read_mturk_results(
    table: str | os.PathLike | pd.DataFrame, tasks: pd.DataFrame | str | os.PathLike | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expand an MTurk batch-results CSV into long-format annotations.

    Each row is one assignment. The task it showed comes from ``Input.task_b64`` (the base64 JSON that
    :func:`generalization.sampler.tasks.write_mturk_batch` writes) or, with ``tasks`` given, from the task table
    by ``Input.task_id``; the worker's choice is ``Answer.selected`` (a JSON list or comma-separated
    image ids). Every shown image becomes one row (selected or not). With a task table, each row also
    gets its ``role`` (candidate / positive / negative control) and controls their true class.

    Returns ``(annotations, problems)``.
    """
    df = _as_frame(table)
    file = df.attrs["file"]
    _require_columns(df, ["AssignmentId", "WorkerId", "Answer.selected"], "MTurk results")
    if "Input.task_b64" not in df.columns and "Input.task_id" not in df.columns:
        raise DataError(f"{file}: MTurk results lack both Input.task_b64 and Input.task_id")
    task_table = None
    if tasks is not None:
        task_table = check_task_table(tasks if isinstance(tasks, pd.DataFrame) else read_table(tasks))
    status = (
        df["AssignmentStatus"] if "AssignmentStatus" in df.columns else pd.Series("Submitted", index=df.index)
    )
    rows: list[dict] = []
    problems: list[dict] = []
    for i, r in enumerate(df.to_dict("records")):
        line = int(r["line"])
        try:
            if "Input.task_b64" in df.columns and r["Input.task_b64"]:
                task_id, cls, shown = _task_payload_images(_decode_task_b64(r["Input.task_b64"]))
            else:
                task_id, cls, shown = str(r["Input.task_id"]), None, None
            selected = _parse_id_list(r["Answer.selected"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            problems.append(
                {
                    "file": file,
                    "line": line,
                    "reason": f"unreadable task or answer ({e})",
                    "image_id": "",
                    "class": "",
                    "assignment_id": r["AssignmentId"],
                }
            )
            continue
        roles: dict[str, str] = {}
        if task_table is not None:
            t = task_table[task_table["task_id"] == task_id]
            if len(t) == 0:
                problems.append(
                    {
                        "file": file,
                        "line": line,
                        "reason": f"unknown task {task_id!r}",
                        "image_id": "",
                        "class": cls or "",
                        "assignment_id": r["AssignmentId"],
                    }
                )
                continue
            if shown is None:
                try:
                    order = t.sort_values("position", key=lambda s: s.astype(int))
                except ValueError:
                    raise DataError(f"task table: task {task_id!r} has a non-integer position") from None
                shown = order["image_id"].tolist()
            cls = cls if cls is not None else str(t["class"].iloc[0])
            roles = dict(zip(t["image_id"], t["role"], strict=True))
        extra = sorted(set(selected) - set(shown))
        for im in extra:
            problems.append(
                {
                    "file": file,
                    "line": line,
                    "reason": "selected image was not shown in the task",
                    "image_id": im,
                    "class": cls,
                    "assignment_id": r["AssignmentId"],
                }
            )
        chosen = set(selected)
        for im in shown:
            rows.append(
                {
                    "worker_id": r["WorkerId"],
                    "assignment_id": r["AssignmentId"],
                    "task_id": task_id,
                    "image_id": im,
                    "class": cls,
                    "selected": im in chosen,
                    "status": status.iloc[i] or "Submitted",
                    "role": roles.get(im, ""),
                    "line": line,
                }
            )
    out = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)
    out["selected"] = out["selected"].astype(bool)
    out.attrs["file"] = file
    return out, pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def read_task_records(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the JSON records that the standalone task page saves (one JSON object per line, or one object).

    A record is ``{"task_id", "class", "worker_id", "assignment_id", "shown": [...], "selected": [...]}``;
    it is expanded to the long format like an MTurk row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    records = []
    stripped = text.strip()
    if stripped.startswith("{") and "\n{" not in stripped:
        records.append((1, stripped))
    else:
        records = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    rows, problems = [], []
    for line, raw in records:
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in ("shown", "selected", "worker_id", "task_id", "class") if k not in rec]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            shown = _id_list(rec["shown"], "shown", allow_empty=False)
            chosen = set(_id_list(rec["selected"], "selected"))
            worker, task_id = _text(rec["worker_id"], "worker_id"), _text(rec["task_id"], "task_id")
            cls = _text(rec["class"], "class")
            if rec.get("assignment_id") is not None and not isinstance(rec["assignment_id"], (str, int)):
                raise ValueError(f"'assignment_id' must be a string, got {rec['assignment_id']!r}")
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            problems.append(
                {
                    "file": str(path),
                    "line": line,
                    "reason": f"unreadable record ({e})",
                    "image_id": "",
                    "class": "",
                    "assignment_id": "",
                }
            )
            continue
        assignment = str(rec.get("assignment_id") or f"{worker}:{task_id}")
        for im in sorted(chosen - set(shown)):
            problems.append(
                {
                    "file": str(path),
                    "line": line,
                    "reason": "selected image was not shown in the task",
                    "image_id": im,
                    "class": cls,
                    "assignment_id": assignment,
                }
            )
        for im in shown:
            rows.append(
                {
                    "worker_id": worker,
                    "assignment_id": assignment,
                    "task_id": task_id,
                    "image_id": im,
                    "class": cls,
                    "selected": im in chosen,
                    "status": "Submitted",
                    "role": "",
                    "line": line,
                }
            )
    out = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS)
    out["selected"] = out["selected"].astype(bool)
    out.attrs["file"] = str(path)
    return out, pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def _problems(rows: pd.DataFrame, file: str, reason: str) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "file": file,
            "line": rows["line"].astype(np.int64).to_numpy(),
            "reason": reason,
            "image_id": rows["image_id"].to_numpy() if "image_id" in rows else "",
            "class": rows["class"].to_numpy() if "class" in rows else "",
            "assignment_id": rows["assignment_id"].to_numpy() if "assignment_id" in rows else "",
        },
        columns=PROBLEM_COLUMNS,
    )
    return out


def validate_annotations(
    annotations: pd.DataFrame,
    *,
    known_images: Iterable[str] | None = None,
    classes: Iterable[str] | None = None,
    tasks: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split annotations into good rows and problems (with line numbers and a reason).

    Problems: an image id not in ``known_images`` (candidates plus control images), a class not in
    ``classes``, and duplicate assignments: the same (assignment, image) twice (all but the first are
    reported), or a worker doing the same task in two assignments (the later assignment is reported).
    With a task table (``task_id``, ``image_id``, ``role``, ``image_class``), each row gets its control
    role when the annotation table has none.
    """
    file = annotations.attrs.get("file", "<annotations>")
    ann = annotations.reset_index(drop=True).copy()
    reasons = pd.Series("", index=ann.index, dtype=object)
    if known_images is not None:
        known = set(map(str, known_images))
        reasons[(reasons == "") & ~ann["image_id"].isin(known)] = "unknown image"
    if classes is not None:
        cls = set(map(str, classes))
        reasons[(reasons == "") & ~ann["class"].isin(cls)] = "unknown class"
    dup = ann.duplicated(["assignment_id", "image_id"], keep="first")
    reasons[(reasons == "") & dup] = "duplicate assignment (same assignment and image twice)"
    # one worker, one task, two assignments: keep the first assignment (in file order)
    first = ann.drop_duplicates(["worker_id", "task_id"], keep="first").set_index(["worker_id", "task_id"])
    first_assign = first["assignment_id"]
    key = pd.MultiIndex.from_frame(ann[["worker_id", "task_id"]])
    second = ann["assignment_id"].to_numpy() != first_assign.reindex(key).to_numpy()
    reasons[(reasons == "") & second] = "duplicate assignment (worker already did this task)"
    bad = reasons != ""
    problems = _problems(ann[bad], file, "")
    problems["reason"] = reasons[bad].to_numpy()
    good = ann[~bad].copy()
    if tasks is not None and len(good):
        t = tasks[["task_id", "image_id", "role", "image_class"]].astype(str)
        good = good.merge(t.rename(columns={"role": "_role"}), on=["task_id", "image_id"], how="left")
        good["role"] = good["role"].where(good["role"] != "", good["_role"].fillna(""))
        good = good.drop(columns=["_role"])
    good.attrs["file"] = file
    return good.reset_index(drop=True), problems.sort_values("line", kind="stable").reset_index(drop=True)


def load_annotations(
    path: str | os.PathLike | pd.DataFrame,
    *,
    format: str = "auto",
    tasks: pd.DataFrame | str | os.PathLike | None = None,
    known_images: Iterable[str] | None = None,
    classes: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read annotations (long format, MTurk results or task-page records) and validate them.

    ``format`` is ``"long"``, ``"mturk"``, ``"records"`` or ``"auto"`` (MTurk when the table has
    ``Answer.*`` columns; records for ``.json`` files). Returns ``(annotations, problems)``: nothing is
    dropped without a row in ``problems``.
    """
    task_table = None
    if tasks is not None:
        task_table = check_task_table(tasks if isinstance(tasks, pd.DataFrame) else read_table(tasks))
    if format not in ("auto", "long", "mturk", "records"):
        raise DataError(f"unknown annotation format {format!r} (auto, long, mturk or records)")
    if format == "auto":
        if not isinstance(path, pd.DataFrame) and Path(path).suffix.lower() == ".json":
            format = "records"
        else:
            df = _as_frame(path)
            if any(c.startswith("Answer.") for c in df.columns):
                format = "mturk"
            elif {"shown", "selected"} <= set(df.columns) and "image_id" not in df.columns:
                format = "records"  # the standalone page's JSONL records
            else:
                format = "long"
            if format != "records":
                path = df
    if format == "long":
        ann, p1 = read_long_annotations(path)
    elif format == "mturk":
        ann, p1 = read_mturk_results(path, task_table)
    elif format == "records":
        ann, p1 = read_task_records(path)
    else:
        raise ValueError(f"unknown annotation format {format!r}")
    good, p2 = validate_annotations(ann, known_images=known_images, classes=classes, tasks=task_table)
    problems = pd.concat([p1, p2], ignore_index=True) if len(p1) else p2
    return good, problems.sort_values("line", kind="stable").reset_index(drop=True)
