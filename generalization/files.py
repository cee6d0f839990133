"""Safe, atomic file I/O shared by every part of the package.

Writes go to a temporary file in the destination folder and are renamed into place, so a reader (or a
crash) never sees half a file. Loads never execute code: ``.npy`` files are read with
``allow_pickle=False`` and legacy pickles (the CIFAR-10 batches) through a restricted unpickler.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DataError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npy",
    "load_npy",
    "load_json",
    "restricted_pickle_load",
]


_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(ValueError):
    """Bad input data. The message names the file and what is wrong with it."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    if array.dtype == object:
        raise DataError(f"{path}: refusing to save an object array")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Load a ``.npy`` file without ever unpickling; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:  # object arrays need pickle
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise DataError(f"{path}: holds an object array (pickled data); refusing to load it") from e
        raise DataError(f"{path}: not a valid or complete .npy file ({e})") from e
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a valid or complete .npy file ({e})") from e


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows numpy arrays and plain containers, nothing else (no code can run)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def restricted_pickle_load(path: str | os.PathLike, encoding: str = "bytes") -> Any:
    """Load a legacy pickle (e.g. ``cifar-10-batches-py/test_batch``) that may hold only numpy arrays,
    numbers, strings, bytes, lists, tuples and dicts. Anything else is refused with :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, encoding=encoding).load()
        except pickle.UnpicklingError as e:
            raise DataError(f"{path}: refused to unpickle: {e} (only arrays and plain containers)") from e
        except (EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise DataError(f"{path}: not a valid pickle ({e})") from e
