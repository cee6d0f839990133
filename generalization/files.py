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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DataError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_npy",
    "load_npy",
    "load_json",
    "restricted_pickle_load",
    "csv_safe",
    "csv_text",
    "CSV_FLOAT_FORMAT",
    "written_files",
    "cifar10_test_batch",
    "load_cifar10_batch",
    "save_figure",
    "check_unique_ids",
]


_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(ValueError):
    """Bad input data. The message names the file and what is wrong with it."""


def check_unique_ids(
    ids: Iterable[object], where: str | os.PathLike, *, key: Callable[[str], str] | None = None
) -> None:
    """Refuse a list of image ids (a manifest's, a release's, a store's) that names one image twice.

    The one duplicate-id check for every reader, so every reader says the same thing. ``where`` names the
    file (or test set) for the message. ``key`` maps an id to the image it designates when two spellings can
    name one file (e.g. the file stem, for manifests matched to files by name). Raises :class:`DataError`
    naming the first repeated id.
    """
    first: dict[str, str] = {}
    for image_id in map(str, ids):
        k = image_id if key is None else key(image_id)
        if k in first:
            also = "" if first[k] == image_id else f" (as {first[k]!r}: both name the file {k!r})"
            raise DataError(f"{where}: image id {image_id!r} is listed twice{also}; one image would be scored twice")
        first[k] = image_id


#: every path an atomic write completed in this process, in order (the CLI reports them after a failure)
_WRITTEN: list[Path] = []


def written_files() -> list[Path]:
    """The files this process has written so far (atomic writes only), oldest first."""
    return list(_WRITTEN)


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
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename != str(path):
            # name the file being written (ENOSPC on write() carries no name; a temp name means nothing)
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    _WRITTEN.append(path)
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
    """Load a ``.npy`` file without ever unpickling; errors name the file and say what it holds."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    with open(path, "rb") as f:
        # np.load falls back to unpickling anything that is not .npy/.npz: tell those apart here, so a text
        # file is called a text file and not "pickled data"
        head = f.read(8)
        if head[:6] != b"\x93NUMPY":
            what = "a pickle" if head[:1] == b"\x80" else "a .npz archive" if head[:2] == b"PK" else "not .npy data"
            raise DataError(f"{path}: not a .npy file (no NPY header; {what})")
        try:
            f.seek(0)
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            dtype = read_header[version](f)[2] if version in read_header else None
        except (ValueError, OSError, EOFError, SyntaxError) as e:
            raise DataError(f"{path}: not a valid .npy header ({e})") from e
    if dtype is not None and dtype.hasobject:
        raise DataError(f"{path}: holds an object array (pickled data); refusing to load it")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a valid or complete .npy file ({e})") from e


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(path: str | os.PathLike) -> Any:
    """Load a JSON file (strict: NaN and Infinity are refused); errors name the file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e


# A cell a spreadsheet would run as a formula starts with one of these (OWASP "CSV injection").
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _neutralise(v: Any) -> Any:
    if not isinstance(v, str) or not v.startswith(_FORMULA_PREFIXES):
        return v
    try:
        float(v)  # a number such as "-1.5" is data, not a formula
        return v
    except ValueError:
        return "'" + v


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells cannot start a spreadsheet formula: a cell beginning with
    ``= + - @``, a tab or a carriage return (and not a plain number) gets a leading ``'``. Numbers and
    column names are kept as they are (column names are the package's own)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(_neutralise)
    return out


#: The one float format of the CSV files the package writes. Ten significant digits: integers up to 10^10 (image
#: counts) are written exactly, and a percentage, fit or interval keeps far more digits than any test or reader
#: checks (a top-1 measured on 50,000 images has 5 significant digits), where fixed-point "%.4f" writes 3e-5 as
#: 0.0000 and "%.6g" writes 1,234,567 as 1.23457e+06. Fewer digits than a float's full repr (17), so the
#: last-bit differences that summation order or a library version leave in a computed value (almost never) change
#: the file's bytes.
CSV_FLOAT_FORMAT = "%.10g"


def csv_text(df: pd.DataFrame) -> str:
    """``df`` as CSV text for a file people may open in a spreadsheet (see :func:`csv_safe`); every CSV the
    package writes goes through here, so every one has the same format: floats as :data:`CSV_FLOAT_FORMAT`,
    ``\\n`` line ends, no index."""
    return csv_safe(df).to_csv(index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n")


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


def cifar10_test_batch(root: str | os.PathLike) -> Path:
    """The official CIFAR-10 test batch under ``root``: ``<root>/cifar-10-batches-py/test_batch``, or
    ``<root>/test_batch`` when only that exists (the first path when neither does)."""
    root = Path(root)
    path = root / "cifar-10-batches-py" / "test_batch"
    return root / "test_batch" if not path.exists() and (root / "test_batch").exists() else path


def load_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The images (N x 32 x 32 x 3 uint8, RGB) and labels (N int64 in 0..9) of a batch in the CIFAR-10 python
    format (a pickled dict: ``b'data'`` N x 3072 uint8 channel-major rows, ``b'labels'``), read without
    executing code; anything else is a :class:`DataError` naming the file."""
    path = Path(path)
    batch = restricted_pickle_load(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data' and b'labels')")
    data = np.asarray(batch[b"data"])
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(f"{path}: b'data' must be an N x 3072 uint8 array, found {data.dtype} {data.shape}")
    labels = np.asarray(batch[b"labels"])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: expected a 1-d integer array of labels, found {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels outside 0..9")
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(labels)} labels for {len(data)} images")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels.astype(np.int64)


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save a matplotlib figure as a PNG, atomically, and close it.

    The PNG carries no ``Software`` (matplotlib version) entry, so reruns, on any matplotlib version that draws
    the same pixels, give byte-identical files.
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
