"""Labeling tasks: 48 images for one class (42 candidates, 3 positive and 3 negative controls).

Annotators see a class name, its definition and a grid of images and select every image that shows the
class. Positive controls are original test images of the class (they should be selected), negative controls
images of another, preferably similar, class (they should not); :func:`generalization.sampler.annotations.
worker_quality` scores workers on them.

Outputs (:func:`write_tasks`):

* ``tasks.csv``: the long task table (``task_id``, ``class``, ``position``, ``image_id``, ``role``,
  ``image_class``, ``url``). It says which images are controls: keep it private.
* ``mturk_batch_input.csv``: one row per task for an MTurk batch; the column ``task_b64`` holds the task
  as base64 JSON (class name, definition, image ids and URLs, no roles), which the template decodes.
* ``mturk_template.html``: the task page with the ``${task_b64}`` placeholder, to paste as the MTurk layout
  (or serve as an HTMLQuestion; it then posts to ``turkSubmitTo/mturk/externalSubmit``).
* ``pages/<task_id>.html``: self-contained standalone pages for in-house labeling; on submit they show a
  JSON record (and a download link) that :func:`generalization.sampler.annotations.read_task_records` reads.

Base64 keeps the payload inert wherever MTurk pastes it, and the page sets all text with ``textContent``,
so hostile class names or definitions cannot inject markup or script.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import pandas as pd

from ..files import DataError, atomic_write_text, csv_text

__all__ = [
    "make_tasks",
    "task_payload",
    "render_task_page",
    "mturk_template",
    "write_mturk_batch",
    "write_tasks",
    "check_url_template",
    "TASK_COLUMNS",
]

TASK_COLUMNS = ["task_id", "class", "position", "image_id", "role", "image_class", "url"]
_PLACEHOLDER = "${task_b64}"
_PAGE = re.compile(r"task-\d{6,}\.html")  # the page names make_tasks' task ids give


def check_url_template(template: str) -> str:
    """A ``str.format`` template whose only field is ``{image_id}``; DataError otherwise."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        template.format(image_id="x")
    except (ValueError, IndexError, KeyError, AttributeError):
        fields = []
    if not fields or any(f != "image_id" for f in fields):
        raise DataError(f"url template {template!r}: its only field must be {{image_id}}, e.g. 'https://host/{{image_id}}.jpg'")
    return template


def _urls(df: pd.DataFrame, url_template: str | None) -> pd.Series:
    if "url" in df.columns:
        return df["url"].astype(str)
    if "path" in df.columns:
        return df["path"].astype(str)
    if url_template is None:
        return df["image_id"].astype(str)
    return df["image_id"].map(lambda i: url_template.format(image_id=i))


def make_tasks(
    candidates: pd.DataFrame,
    positives: pd.DataFrame,
    negatives: pd.DataFrame | None = None,
    *,
    seed: int,
    similar_classes: Mapping[str, list[str]] | None = None,
    n_candidates: int = 42,
    n_positive: int = 3,
    n_negative: int = 3,
    url_template: str | None = None,
) -> pd.DataFrame:
    """Build labeling tasks, deterministically for a given seed.

    Parameters
    ----------
    candidates
        ``image_id``, ``class`` (+ optional ``url`` or ``path``): the images to annotate.
    positives
        ``image_id``, ``class`` (+ ``url``/``path``): original test images, the positive controls of their
        class.
    negatives
        Images to use as negative controls (default: ``positives``); a task of class c takes its
        negatives from one other class: a random one of ``similar_classes[c]`` that has enough images,
        else a random other class.
    seed
        Seeds the one random generator: candidate order, control draws, and the shuffle of each task.
    url_template
        ``"https://host/{image_id}.jpg"`` when the tables have no ``url``/``path`` column.

    Returns
    -------
    The long task table (:data:`TASK_COLUMNS`), one row per shown image. Per class the candidates are
    shuffled and cut into tasks of ``n_candidates``; a short last task is topped up with other candidates
    of its class (they get extra annotations); a class with fewer candidates than that gets one short task.
    """
    negatives = positives if negatives is None else negatives
    for name, df in (("candidates", candidates), ("positives", positives), ("negatives", negatives)):
        where = df.attrs.get("file", f"{name} table")
        missing = {"image_id", "class"} - set(df.columns)
        if missing:
            raise DataError(f"{where}: {name} table lacks column(s) {sorted(missing)}")
        if len(df) == 0:
            raise DataError(f"{where}: the {name} table is empty")
        ids, classes = df["image_id"].astype(str).str.strip(), df["class"].astype(str).str.strip()
        if ((ids == "") | (classes == "") | df["image_id"].isna() | df["class"].isna()).any():
            raise DataError(f"{where}: {name} table has an empty image_id or class")
        dup = ids[ids.duplicated()]
        if len(dup):
            raise DataError(f"{where}: {name} table lists image {dup.iloc[0]!r} twice")
    for name, v in (("n_candidates", n_candidates), ("n_positive", n_positive), ("n_negative", n_negative)):
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "n_candidates" else 0):
            raise DataError(f"{name} must be a {'positive' if name == 'n_candidates' else 'non-negative'} integer, got {v!r}")
    if url_template is not None:
        check_url_template(url_template)
    similar_classes = similar_classes or {}
    if not isinstance(similar_classes, Mapping) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in similar_classes.values()
    ):
        raise DataError("similar classes must be a JSON object {class: [similar classes]}")
    rng = random.Random(seed)

    def by_class(df: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
        d = df.assign(
            image_id=df["image_id"].astype(str),
            **{"class": df["class"].astype(str)},
            _url=_urls(df, url_template).to_numpy(),
        )
        d = d.sort_values(["class", "image_id"], kind="stable")
        return {c: list(zip(g["image_id"], g["_url"], strict=True)) for c, g in d.groupby("class", sort=True)}

    cand, pos, neg = by_class(candidates), by_class(positives), by_class(negatives)
    rows = []
    counter = 0
    for cls in sorted(cand):
        items = list(cand[cls])
        rng.shuffle(items)
        chunks = [items[i : i + n_candidates] for i in range(0, len(items), n_candidates)]
        if len(chunks) > 1 and len(chunks[-1]) < n_candidates:
            last = {im for im, _ in chunks[-1]}
            others = [it for it in items if it[0] not in last]
            chunks[-1] = chunks[-1] + rng.sample(others, n_candidates - len(chunks[-1]))
        pos_pool = pos.get(cls, [])
        if len(pos_pool) < n_positive:
            raise DataError(f"class {cls!r}: {len(pos_pool)} positive control images, need {n_positive}")
        neg_classes = [
            c for c in similar_classes.get(cls, []) if c != cls and len(neg.get(c, [])) >= n_negative
        ]
        if not neg_classes:
            neg_classes = [c for c in sorted(neg) if c != cls and len(neg[c]) >= n_negative]
        if not neg_classes:
            raise DataError(f"class {cls!r}: no other class has {n_negative} negative control images")
        for chunk in chunks:
            neg_cls = rng.choice(neg_classes)
            shown = [(im, url, "candidate", cls) for im, url in chunk]
            shown += [(im, url, "positive", cls) for im, url in rng.sample(pos_pool, n_positive)]
            shown += [(im, url, "negative", neg_cls) for im, url in rng.sample(neg[neg_cls], n_negative)]
            rng.shuffle(shown)
            task_id = f"task-{counter:06d}"
            counter += 1
            for k, (im, url, role, im_cls) in enumerate(shown):
                rows.append((task_id, cls, k, im, role, im_cls, url))
    return pd.DataFrame(rows, columns=TASK_COLUMNS)


def _class_text(class_info: Mapping | pd.DataFrame | None, cls: str) -> tuple[str, str]:
    if class_info is None:
        return cls, ""
    if isinstance(class_info, pd.DataFrame):
        row = class_info[class_info["class"].astype(str) == cls]
        if len(row) == 0:
            return cls, ""
        r = row.iloc[0]
        return str(r.get("name", cls) or cls), str(r.get("definition", "") or "")
    v = class_info.get(cls)
    if v is None:
        return cls, ""
    if isinstance(v, str):
        return v, ""
    return str(v[0]), str(v[1])


def task_payload(tasks: pd.DataFrame, task_id: str, class_info: Mapping | pd.DataFrame | None = None) -> dict:
    """The JSON the task page shows: task id, class, name, definition and the images in display order.

    Roles are left out on purpose: a worker reading the page source must not see which are controls.
    """
    t = tasks[tasks["task_id"] == task_id].sort_values("position")
    if len(t) == 0:
        raise DataError(f"no task {task_id!r} in the task table")
    cls = str(t["class"].iloc[0])
    name, definition = _class_text(class_info, cls)
    return {
        "task_id": str(task_id),
        "class": cls,
        "class_name": name,
        "definition": definition,
        "images": [{"image_id": str(i), "url": str(u)} for i, u in zip(t["image_id"], t["url"], strict=True)],
    }


def _b64(payload: dict) -> str:
    return base64.b64encode(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).decode(
        "ascii"
    )


def mturk_template() -> str:
    """The task page with its ``${task_b64}`` placeholder (the MTurk layout)."""
    return resources.files("generalization").joinpath("sampler/templates/task.html").read_text(encoding="utf-8")


def render_task_page(payload: dict) -> str:
    """A self-contained standalone page for one task (the template with its payload filled in)."""
    template = mturk_template()
    assert template.count(_PLACEHOLDER) == 1
    return template.replace(_PLACEHOLDER, _b64(payload))


def write_mturk_batch(
    tasks: pd.DataFrame, path: str | os.PathLike, class_info: Mapping | pd.DataFrame | None = None
) -> Path:
    """Write the MTurk batch-input CSV: ``task_id``, ``class``, ``num_images``, ``task_b64``."""
    rows = []
    for task_id in sorted(tasks["task_id"].unique()):
        p = task_payload(tasks, task_id, class_info)
        rows.append(
            {"task_id": task_id, "class": p["class"], "num_images": len(p["images"]), "task_b64": _b64(p)}
        )
    return atomic_write_text(path, csv_text(pd.DataFrame(rows)))


def write_tasks(
    tasks: pd.DataFrame,
    out_dir: str | os.PathLike,
    class_info: Mapping | pd.DataFrame | None = None,
    *,
    pages: bool = True,
) -> list[Path]:
    """Write ``tasks.csv``, ``mturk_batch_input.csv``, ``mturk_template.html`` and (with ``pages``)
    ``pages/<task_id>.html`` into ``out_dir``; returns the paths written.

    Pages an earlier run left in ``out_dir/pages`` (``task-NNNNNN.html``, the names this function gives)
    that this run does not write are removed, so the folder never mixes two task sets; nothing else in
    ``out_dir`` is touched."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if isinstance(class_info, pd.DataFrame):
        where = class_info.attrs.get("file", "class info")
        if "class" not in class_info.columns:
            raise DataError(f"{where}: the class-info table lacks a 'class' column")
        dup = class_info["class"].astype(str)[class_info["class"].astype(str).duplicated()]
        if len(dup):
            raise DataError(f"{where}: class {dup.iloc[0]!r} is listed twice")
    written = [
        atomic_write_text(out / "tasks.csv", csv_text(tasks[TASK_COLUMNS])),
        write_mturk_batch(tasks, out / "mturk_batch_input.csv", class_info),
        atomic_write_text(out / "mturk_template.html", mturk_template()),
    ]
    if pages:
        for task_id in sorted(tasks["task_id"].unique()):
            page = render_task_page(task_payload(tasks, task_id, class_info))
            written.append(atomic_write_text(out / "pages" / f"{task_id}.html", page))
    pages_dir = out / "pages"
    if pages_dir.is_dir():
        keep = {p.name for p in written}
        for old in sorted(pages_dir.iterdir()):
            if _PAGE.fullmatch(old.name) and old.name not in keep and old.is_file() and not old.is_symlink():
                old.unlink()
    return written
