"""Manifests that carry everything the evaluator and the analysis need: one id scheme from candidates to
test set, the label space, the original test set, and provenance.

The id scheme: the candidate table's ``image_id`` is the id everywhere after it (tasks, annotations,
near-duplicate decisions, exclusions, manifests). A folder of images laid out as ``<class>/<file>`` gives
each image the id ``<class>/<file>`` (its path relative to the folder), which is also the id
``near-duplicates`` gives a folder and the file the evaluator opens under ``--data-root``. A candidate table
may instead carry a ``path`` column (relative to the images' root) next to any other id.

A manifest written by the sampler (:func:`declare`) adds to the ImageNetV2-style ``image_filenames``:

``name``, ``title``
    the new test set's name in the store and the figures (never a built-in name with other contents);
``original``
    the test set it replicates (``null`` for an original test set), so ``analyze`` pairs them;
``classes``
    the label space: class names in the models' output order (class index = position);
``image_files``
    the file of each listed image, relative to the images' root (``evaluate --data-root``);
``provenance``
    strategy, seed and the sha256 of every input file.

:func:`table_manifest` writes the same for a whole table (e.g. an original test set laid out as files).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import DataError, check_unique_ids, load_json

__all__ = [
    "parse_classes",
    "file_sha256",
    "class_folder_ids",
    "parse_rows",
    "image_files",
    "declare",
    "table_manifest",
]


def parse_classes(value: str | os.PathLike | Sequence[str] | None) -> list[str] | None:
    """Class names in label order from a list, a comma-separated string, a ``.json`` list or a text file
    (one name per line). None stays None."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        names = [str(v) for v in value]
    else:
        p = Path(value)
        if p.suffix.lower() == ".json" and p.is_file():
            names = load_json(p)
            if not isinstance(names, list):
                raise DataError(f"{p}: expected a JSON list of class names")
            names = [str(v) for v in names]
        elif p.is_file():
            names = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            names = [v.strip() for v in str(value).split(",") if v.strip()]
    if not names or len(set(names)) != len(names):
        raise DataError(f"classes {value!s:.80}: expected distinct class names in label order")
    return names


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def class_folder_ids(folder: str | os.PathLike, labels: np.ndarray, classes: Sequence[str]) -> list[str]:
    """Image ids ``<class>/<file>`` for rows laid out as ``folder/<class name>/<files>``.

    Row ``r`` with label ``c`` is the k-th file (sorted by name) of folder ``classes[c]``, where k counts the
    earlier rows labelled ``c``: the layout of CIFAR-10 exported to class folders in the official order.
    Every class folder must hold exactly as many images as rows carry its label.
    """
    folder = Path(folder)
    labels = np.asarray(labels, dtype=np.int64)
    files: dict[int, list[str]] = {}
    for c, name in enumerate(classes):
        d = folder / name
        if not d.is_dir():
            raise DataError(f"{d}: class folder missing (classes: {', '.join(classes)})")
        files[c] = sorted(p.name for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        want = int((labels == c).sum())
        if len(files[c]) != want:
            raise DataError(f"{d}: {len(files[c])} files, but {want} rows are labelled {name!r}")
    seen = np.zeros(len(classes), dtype=np.int64)
    ids = []
    for c in labels.tolist():
        ids.append(f"{classes[c]}/{files[c][seen[c]]}")
        seen[c] += 1
    return ids


def parse_rows(spec: str | None, n: int) -> slice:
    """``START:STOP`` (Python slice, either end may be empty) -> a slice of ``n`` rows."""
    if spec is None:
        return slice(0, n)
    a, sep, b = spec.partition(":")
    try:
        if not sep:
            raise ValueError
        sl = slice(int(a) if a else 0, int(b) if b else n)
    except ValueError:
        raise DataError(f"--rows {spec!r}: expected START:STOP, e.g. 1000: or 0:1000") from None
    if not 0 <= sl.start <= sl.stop <= n:
        raise DataError(f"--rows {spec!r}: outside 0..{n}")
    return sl


def image_files(ids: Sequence[Any], candidates: pd.DataFrame | None) -> list[str] | None:
    """The file of each id: the candidate table's ``path`` column when it has one, else the id itself when
    it reads as a relative image path (``cat/0003.jpg``); None when neither (the evaluator then matches
    ids to file names)."""
    if candidates is not None and "path" in candidates.columns:
        where = dict(zip(candidates["image_id"].astype(str), candidates["path"].astype(str), strict=True))
        missing = [str(i) for i in ids if str(i) not in where]
        if missing:
            raise DataError(f"no path for image id(s) {missing[:3]} in the candidate table")
        return [where[str(i)] for i in ids]
    exts = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm"}
    if all(isinstance(i, str) and Path(i).suffix.lower() in exts and not Path(i).is_absolute() for i in ids):
        return [str(i) for i in ids]
    return None


def _label_space(manifest: dict, classes: Sequence[str] | None) -> list[str] | None:
    used = [c for _, c in manifest["image_filenames"]]
    if classes is None:
        if all(isinstance(c, str) and c.isdigit() for c in used):  # tables are read as text
            manifest["image_filenames"] = [[i, int(c)] for i, c in manifest["image_filenames"]]
            return None
        if all(isinstance(c, (int, np.integer)) for c in used):
            return None  # class indices need no names
        classes = sorted({str(c) for c in used})
    unknown = sorted({str(c) for c in used} - set(map(str, classes)))
    if unknown:
        raise DataError(f"class(es) {unknown[:5]} of the sampled images are not in the label space {list(classes)[:10]}")
    return [str(c) for c in classes]


def declare(
    manifest: dict,
    *,
    name: str | None,
    original: str | None,
    classes: Sequence[str] | None = None,
    title: str | None = None,
    candidates: pd.DataFrame | None = None,
    inputs: dict[str, str | os.PathLike | None] | None = None,
) -> dict:
    """Add the label space, the original, each id's file and provenance to a manifest (in place; returned).

    ``classes`` None: integer classes stay indices; class names are taken in sorted order (the CIFAR-10
    and ImageNet wnid orders are sorted; pass ``classes`` for any other label space). ``inputs`` maps a
    role (``candidates``, ``exclusions``, ...) to the file read, hashed with sha256.
    """
    from ..test_sets import check_builtin_name

    space = _label_space(manifest, classes)
    if name:
        check_builtin_name(name, len(manifest["image_filenames"]), len(space) if space else 0, original,
                           f"manifest {name!r}")
        manifest["name"] = name
    if title:
        manifest["title"] = title
    manifest["original"] = original
    if space is not None:
        manifest["classes"] = space
        manifest["num_classes"] = len(space)
    files = image_files([i for i, _ in manifest["image_filenames"]], candidates)
    if files is not None:
        manifest["image_files"] = files
    manifest["provenance"] = {
        "strategy": manifest.get("sampling_function"),
        "seed": manifest.get("seed"),
        "inputs": {
            role: {"file": Path(p).name, "sha256": file_sha256(p)}
            for role, p in sorted((inputs or {}).items())
            if p is not None
        },
    }
    return manifest


def table_manifest(
    table: pd.DataFrame,
    *,
    name: str,
    original: str | None = None,
    classes: Sequence[str] | None = None,
    title: str | None = None,
    source: str | os.PathLike | None = None,
) -> dict:
    """A manifest listing every row of a table (``image_id``, ``class`` [+ ``path``]) in table order: e.g. an
    original test set laid out as files, so it can be evaluated and paired like any other."""
    for col in ("image_id", "class"):
        if col not in table.columns:
            raise DataError(f"{source or 'table'}: lacks column {col!r}")
    check_unique_ids(table["image_id"], source or "table")
    pairs = [[str(i), str(c)] for i, c in zip(table["image_id"], table["class"], strict=True)]
    m = {"sampling_function": "table", "seed": None, "num_images": len(pairs), "image_filenames": pairs,
         "is_valid": True}
    return declare(m, name=name, original=original, classes=classes, title=title, candidates=table,
                   inputs={"table": source} if source else None)
