"""Store file names and the store's write conflict: shared by the per-record store (``records``) and the
bulk tables of published accuracies (``tables``), so neither imports the other's module for them."""

from __future__ import annotations

from urllib.parse import quote

from ..files import DataError

__all__ = ["RecordExistsError", "file_key"]

_MAX_KEY = 200  # bytes; file names may be 255, and the record adds ".<sha12>.npy" and ".json.lock"


class RecordExistsError(FileExistsError):
    """A different record for the same (source, model, test set) is already in the store."""


def file_key(name: str) -> str:
    """The file-name form of a name: percent-encoded, never ``.``/``..`` or hidden (a leading dot is %2E)."""
    if not isinstance(name, str) or not name:
        raise DataError(f"a store name must be a non-empty string, got {name!r}")
    key = quote(name, safe="-_.@+=,")
    if key.startswith("."):
        key = "%2E" + key[1:]
    if len(key) > _MAX_KEY:
        raise DataError(f"name {name[:60]!r}...: too long for a store file name ({len(key)} > {_MAX_KEY} bytes encoded)")
    return key
