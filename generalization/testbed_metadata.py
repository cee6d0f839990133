"""imagenet-testbed's class subsets, label maps and model types, read as data.

imagenet-testbed (modestyachts/imagenet-testbed, MIT) keeps these in Python source files. They are parsed
here with :mod:`ast` and never imported or executed: only literal lists / dicts and the narrow
``for i in range(N): model_types_map[f"...{i}..."] = ModelTypes.X`` pattern are understood; anything else
is a :class:`~generalization.files.DataError`.

The package ships the result as ``generalization/testbed_metadata.json`` (made by :func:`write_bundle`
from a copy of the testbed's files, e.g. ``../shared/data/imagenet-testbed-metadata``, where path
separators are written ``__``), so the catalog and the evaluator need no clone of the testbed.
"""

from __future__ import annotations

import ast
import functools
import json
import os
from pathlib import Path
from typing import Any

from .files import DataError, atomic_write_text, load_json

__all__ = [
    "TESTBED_TYPE_TO_MODEL_TYPE",
    "parse_class_sublist",
    "parse_model_types",
    "objectnet_classes",
    "build_bundle",
    "write_bundle",
    "bundle",
]

BUNDLE_PATH = Path(__file__).with_name("testbed_metadata.json")

#: the testbed's ``ModelTypes`` member -> the model type of the accuracy table (the contract with the
#: effective-robustness analysis: ``standard``, ``more_data``, ``robustness_intervention``, ``other``)
TESTBED_TYPE_TO_MODEL_TYPE = {
    "STANDARD": "standard",
    "MORE_DATA": "more_data",
    "ROBUST_INTV": "robustness_intervention",
    "LP_ADV": "robustness_intervention",
    "RANDOM_FEATURES": "other",
    "LINEAR_PIXELS": "other",
    "RANDOM_FORESTS": "other",
    "NEAREST_NEIGHBORS": "other",
    "LOW_ACCURACY_CNN": "other",
}


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not readable as Python source ({e})") from e


def parse_class_sublist(path: str | os.PathLike) -> list[int]:
    """The literal ``class_sublist = [...]`` of a testbed eval-setting file (ImageNet-A, ImageNet-R)."""
    path = Path(path)
    for node in _parse(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "class_sublist" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as e:
                raise DataError(f"{path}: class_sublist is not a literal list") from e
            if not isinstance(value, list) or not all(isinstance(v, int) and 0 <= v < 1000 for v in value):
                raise DataError(f"{path}: class_sublist must be a list of ImageNet class indices 0..999")
            return value
    raise DataError(f"{path}: no literal class_sublist found")


def _fstring_with(node: ast.JoinedStr, var: str, value: int, path: Path) -> str:
    parts = []
    for v in node.values:
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            parts.append(v.value)
        elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id == var:
            parts.append(str(value))
        else:
            raise DataError(f"{path}: line {node.lineno}: unsupported f-string in a model-type loop")
    return "".join(parts)


def _type_name(node: ast.expr, path: Path) -> str:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ModelTypes":
        if node.attr not in TESTBED_TYPE_TO_MODEL_TYPE:
            raise DataError(f"{path}: line {node.lineno}: unknown model type ModelTypes.{node.attr}")
        return node.attr
    raise DataError(f"{path}: line {getattr(node, 'lineno', '?')}: expected ModelTypes.<NAME>")


def parse_model_types(path: str | os.PathLike) -> dict[str, str]:
    """Model name -> testbed type name (``STANDARD``, ``MORE_DATA``, ...) from ``plotting/model_types.py``."""
    path = Path(path)
    out: dict[str, str] = {}
    found = False
    for node in _parse(path).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "model_types_map" for t in node.targets):
            if not isinstance(node.value, ast.Dict):
                raise DataError(f"{path}: model_types_map is not a dict literal")
            found = True
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                    raise DataError(f"{path}: line {v.lineno}: model names must be string literals")
                out[k.value] = _type_name(v, path)
        elif isinstance(node, ast.For) and found:
            # for i in range(N): model_types_map[f"name_{i}"] = ModelTypes.X
            it = node.iter
            if not (isinstance(node.target, ast.Name) and isinstance(it, ast.Call) and isinstance(it.func, ast.Name)
                    and it.func.id == "range" and len(it.args) == 1 and isinstance(it.args[0], ast.Constant)
                    and isinstance(it.args[0].value, int)):  # fmt: skip
                raise DataError(f"{path}: line {node.lineno}: unsupported loop (only `for i in range(N)`)")
            for stmt in node.body:
                if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Subscript)
                        and isinstance(stmt.targets[0].value, ast.Name) and stmt.targets[0].value.id == "model_types_map"
                        and isinstance(stmt.targets[0].slice, ast.JoinedStr)):  # fmt: skip
                    raise DataError(f"{path}: line {stmt.lineno}: unsupported statement in a model-type loop")
                kind = _type_name(stmt.value, path)
                for i in range(it.args[0].value):
                    out[_fstring_with(stmt.targets[0].slice, node.target.id, i, path)] = kind
    if not found:
        raise DataError(f"{path}: no model_types_map dict found")
    return out


def objectnet_classes(folder: str | os.PathLike) -> dict[str, Any]:
    """ObjectNet's overlap with ImageNet from the testbed's label maps.

    Returns ``{"objectnet_to_imagenet": {ObjectNet class: [ImageNet indices]}, "folder_to_objectnet":
    {folder: ObjectNet class}, "class_sublist": [ImageNet indices]}`` (the sublist in the testbed's order:
    ObjectNet classes as listed, each class's ImageNet classes in its order).
    """
    folder = Path(folder)

    def meta(name: str) -> Path:
        for p in (folder / f"src__eval_settings__objectnet_metadata__{name}", folder / "objectnet_metadata" / name):
            if p.exists():
                return p
        raise DataError(f"{folder}: ObjectNet label map {name} not found")

    on_to_names = load_json(meta("objectnet_to_imagenet_1k.json"))
    idx_to_name = load_json(meta("imagenet_to_labels.json"))
    folder_to_on = load_json(meta("folder_to_objectnet_label.json"))
    name_to_idx = {v: int(k) for k, v in idx_to_name.items()}
    mapping, sublist = {}, []
    for on_name, names in on_to_names.items():
        try:
            ids = [name_to_idx[n] for n in names.split("; ")]
        except KeyError as e:
            raise DataError(f"{folder}: ObjectNet class {on_name!r} maps to unknown ImageNet class {e.args[0]!r}") from None
        mapping[on_name] = ids
        sublist.extend(ids)
    known = set(on_to_names)
    folders = {f: n for f, n in folder_to_on.items() if n in known}
    return {"objectnet_to_imagenet": mapping, "folder_to_objectnet": folders, "class_sublist": sublist}


def build_bundle(folder: str | os.PathLike) -> dict[str, Any]:
    """Everything the package needs from a copy of the testbed's metadata files (flattened with ``__``)."""
    folder = Path(folder)
    return {
        "source": "modestyachts/imagenet-testbed (MIT), parsed as data by generalization.testbed_metadata",
        "class_sublists": {
            "imagenet-a": parse_class_sublist(folder / "src__eval_settings__imagenet_a.py"),
            "imagenet-r": parse_class_sublist(folder / "src__eval_settings__imagenet_r.py"),
            "objectnet": objectnet_classes(folder)["class_sublist"],
        },
        "objectnet": {k: v for k, v in objectnet_classes(folder).items() if k != "class_sublist"},
        "model_types": dict(sorted(parse_model_types(folder / "plotting__model_types.py").items())),
    }


def write_bundle(folder: str | os.PathLike, out: str | os.PathLike = BUNDLE_PATH) -> Path:
    """Regenerate ``generalization/testbed_metadata.json`` from a copy of the testbed's files."""
    return atomic_write_text(Path(out), json.dumps(build_bundle(folder), indent=1, sort_keys=True) + "\n")


@functools.lru_cache(maxsize=1)
def bundle() -> dict[str, Any]:
    """The shipped bundle (see the module docstring)."""
    return load_json(BUNDLE_PATH)
