"""The store's bulk path for accuracy-only rows (published tables): one table file per source.

Published tables hold tens of thousands of accuracy-only rows (imagenet-testbed: 338 models x 213
settings; timm: about 1,550 models per results file). Writing each as its own record costs a lock file and
an fsync per row; here an import writes one file::

    STORE/tables/<source>.csv       # first line: "# generalization-accuracy-table 1 sha256=<hex of the rest>"

with columns ``model, test_set, n, top1_correct, top5_correct, model_type, model_type_detail`` and any
provenance columns (``published_file``, ``published_column``, ``img_size``, ...). An import merges its rows
into the source's table under one lock (``tables/<source>.lock``) and writes it atomically (temporary
file, fsync, rename) only if something changed, so:

- a reader sees the old table or the new one, never a mix, and verifies the checksum when it reads;
- two importers of one source serialize on the lock; the second sees the first's rows;
- an identical row is a no-op (a rerun writes nothing); a different row for a (model, test set) already
  present -- in the table or as a per-record JSON of the same source -- raises
  :class:`~generalization.store.records.RecordExistsError` unless ``overwrite=True``.

``PredictionStore.accuracy_table()`` includes these rows, with the ``model_type`` column filled from the
tables (and, for other rows on ImageNet-family test sets, from the testbed's types by exact model name).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from filelock import FileLock

from ..files import DataError, atomic_write_text
from ..model_types import testbed_model_type
from ..test_sets import CATALOG

if TYPE_CHECKING:
    from .records import PredictionStore

__all__ = ["TABLE_COLUMNS", "put_accuracy_rows", "read_accuracy_rows", "with_bulk_rows"]

_HEADER = "# generalization-accuracy-table 1 sha256="
TABLE_COLUMNS = ["model", "test_set", "n", "top1_correct", "top5_correct", "model_type", "model_type_detail"]
_VALUES = ["n", "top1_correct", "top5_correct"]


def _path(store: PredictionStore, source: str) -> Path:
    from .names import file_key as _key

    return store.root / "tables" / f"{_key(source)}.csv"


def _read(path: Path) -> pd.DataFrame:
    data = path.read_bytes()
    first, _, body = data.partition(b"\n")
    line = first.decode("utf-8", "replace")
    if not line.startswith(_HEADER):
        raise DataError(f"{path}: not a generalization accuracy table (bad first line)")
    if hashlib.sha256(body).hexdigest() != line[len(_HEADER):].strip():
        raise DataError(f"{path}: content does not match its checksum (a damaged or hand-edited table)")
    # every column as text (provenance stays as written: "1.000" is not "1.0"), then the counts as integers
    df = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    df["n"] = df["n"].astype("int64")
    df["top1_correct"] = df["top1_correct"].astype("int64")
    df["top5_correct"] = pd.to_numeric(df["top5_correct"].replace("", None)).astype("Int64")
    return df


def read_accuracy_rows(store: PredictionStore, source: str | None = None) -> pd.DataFrame:
    """The bulk rows of one source (or of all), with a ``source`` column."""
    d = store.root / "tables"
    if not d.is_dir():
        return pd.DataFrame(columns=["source", *TABLE_COLUMNS])
    paths = [_path(store, source)] if source is not None else sorted(d.glob("*.csv"))
    frames = []
    for p in paths:
        if p.exists():
            df = _read(p)
            df.insert(0, "source", _source_of(p) if source is None else source)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["source", *TABLE_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def _source_of(path: Path) -> str:
    from urllib.parse import unquote

    return unquote(path.stem)


def _validate(rows: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in ["model", "test_set", "n", "top1_correct"] if c not in rows.columns]
    if missing:
        raise ValueError(f"accuracy rows need column(s) {', '.join(missing)}")
    rows = rows.copy()
    for c in ("top5_correct", "model_type", "model_type_detail"):
        if c not in rows.columns:
            rows[c] = pd.NA if c == "top5_correct" else ""
    rows["model"] = rows["model"].astype(str)
    rows["test_set"] = rows["test_set"].astype(str)
    if (rows["model"].str.strip() == "").any():
        raise DataError(f"{source}: an accuracy row has an empty model name")
    rows["n"] = rows["n"].astype("int64")
    rows["top1_correct"] = rows["top1_correct"].astype("int64")
    rows["top5_correct"] = pd.to_numeric(rows["top5_correct"]).astype("Int64")
    for c in ("top1_correct", "top5_correct"):
        bad = rows[c].notna() & ((rows[c] < 0) | (rows[c] > rows["n"]))
        if bad.any():
            r = rows[bad].iloc[0]
            raise DataError(f"{source}: {r['model']} on {r['test_set']}: {c}={r[c]} outside 0..{r['n']}")
    dup = rows.duplicated(["model", "test_set"])
    if dup.any():
        r = rows[dup].iloc[0]
        raise DataError(f"{source}: more than one row for ({r['model']}, {r['test_set']})")
    for c in rows.columns:  # provenance and types are kept as text, exactly as they are read back
        if c not in _VALUES:
            rows[c] = rows[c].astype(object).where(rows[c].notna(), "").astype(str)
    return rows


def _same(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Row-wise equality of the count columns of two aligned frames (NA == NA)."""
    eq = np.ones(len(a), dtype=bool)
    for c in _VALUES:
        x, y = a[c].astype("Int64"), b[c].astype("Int64")
        eq &= ((x == y).fillna(False) | (x.isna() & y.isna())).to_numpy(dtype=bool)
    return eq


def _per_record_conflicts(store: PredictionStore, source: str, rows: pd.DataFrame) -> pd.Series:
    """Mask of ``rows`` that also exist as per-record JSONs of ``source``."""
    from .names import file_key as _key

    skey = _key(source)
    hit = np.zeros(len(rows), dtype=bool)
    for ts, idx in rows.groupby("test_set", sort=True).groups.items():
        d = store.root / "records" / _key(ts) / skey
        if not d.is_dir():
            continue
        stems = {p.name[:-5] for p in d.glob("*.json")}
        keys = rows.loc[idx, "model"].map(_key)
        hit[rows.index.get_indexer(idx)] = keys.isin(stems).to_numpy()
    return pd.Series(hit, index=rows.index)


def put_accuracy_rows(
    store: PredictionStore, source: str, rows: pd.DataFrame, *, overwrite: bool = False
) -> tuple[int, int]:
    """Merge accuracy-only ``rows`` of ``source`` into its table; returns ``(written, unchanged)``.

    ``rows`` needs ``model, test_set, n, top1_correct`` and may have ``top5_correct``, ``model_type``,
    ``model_type_detail`` and provenance columns. One lock and at most one atomic write per call.
    """
    from .names import RecordExistsError

    rows = _validate(rows, source).reset_index(drop=True)
    store._ensure_root()
    path = _path(store, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock"))):
        # rows already kept as per-record JSONs (an older store): identical -> unchanged, else put() decides
        unchanged = 0
        on_disk = _per_record_conflicts(store, source, rows)
        for r in rows[on_disk].itertuples(index=False):
            before = store.get(source, r.model, r.test_set)
            top5 = None if pd.isna(r.top5_correct) else int(r.top5_correct)
            if (before.n, before.top1_correct, before.top5_correct) == (r.n, r.top1_correct, top5):
                unchanged += 1
            else:
                store.put(source=source, model=r.model, test_set=r.test_set, n=int(r.n), top1_correct=int(r.top1_correct),
                          top5_correct=top5, meta={"bulk_table": True}, overwrite=overwrite)  # fmt: skip
        rows = rows[~on_disk.to_numpy()]

        old = _read(path) if path.exists() else pd.DataFrame(columns=TABLE_COLUMNS)
        merged = rows.merge(old[["model", "test_set", *_VALUES]], on=["model", "test_set"], how="left",
                            suffixes=("", "_old"), indicator=True)  # fmt: skip
        present = (merged["_merge"] == "both").to_numpy()
        olds = merged[[f"{c}_old" for c in _VALUES]].set_axis(_VALUES, axis=1)
        same = present & _same(merged[_VALUES], olds)
        differ = present & ~same
        if differ.any() and not overwrite:
            r = merged[differ].iloc[0]
            raise RecordExistsError(
                f"{path}: {int(differ.sum())} row(s) differ from those stored, e.g. ({source}, {r['model']}, "
                f"{r['test_set']}): top-1 {r['top1_correct_old']}/{r['n_old']} stored vs {r['top1_correct']}/{r['n']} "
                "new; pass overwrite=True (--overwrite) to replace them"
            )
        unchanged += int(same.sum())
        changed = rows[~same]
        meta_changed = False
        if same.any() and len(old):
            # provenance / model type of identical rows may be refreshed without counting as a change
            key_old = old.set_index(["model", "test_set"])
            cur = rows[same].set_index(["model", "test_set"])
            common = [c for c in cur.columns if c in key_old.columns and c not in _VALUES]
            a, b = cur[common].astype(str), key_old.loc[cur.index, common].astype(str)
            meta_changed = bool((a.to_numpy() != b.to_numpy()).any())
        if changed.empty and not meta_changed:
            return 0, unchanged
        keep_old = old.merge(rows[["model", "test_set"]], on=["model", "test_set"], how="left", indicator=True)
        keep_old = old[(keep_old["_merge"] == "left_only").to_numpy()]
        table = pd.concat([keep_old, rows], ignore_index=True)
        cols = TABLE_COLUMNS + sorted(c for c in table.columns if c not in TABLE_COLUMNS)
        text = [c for c in cols if c not in _VALUES]
        table[text] = table[text].fillna("")
        table = table[cols].sort_values(["test_set", "model"], kind="stable")
        body = table.to_csv(index=False, lineterminator="\n").encode("utf-8")
        text = _HEADER + hashlib.sha256(body).hexdigest() + "\n" + body.decode("utf-8")
        atomic_write_text(path, text)
    return len(changed), unchanged


def with_bulk_rows(store: PredictionStore, record_rows: pd.DataFrame) -> pd.DataFrame:
    """The per-record rows plus the bulk tables' rows, with ``model_type`` (used by ``accuracy_table``)."""
    bulk = read_accuracy_rows(store)
    frames = [f for f in (record_rows, bulk[[c for c in bulk.columns if c in
                                             ("source", *TABLE_COLUMNS)]]) if not f.empty]  # fmt: skip
    if not frames:
        return record_rows
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].copy()
    if "flag" in df:
        df["flag"] = df["flag"].fillna("")
    dup = df.duplicated(["source", "model", "test_set"], keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        raise DataError(f"store {store.root}: ({r['source']}, {r['model']}, {r['test_set']}) is both a record and "
                        f"a row of tables/{r['source']}.csv (two writers raced); remove one")  # fmt: skip
    for c in ("model_type", "model_type_detail"):
        df[c] = df[c].fillna("") if c in df else ""
    unknown = (df["model_type"] == "") & df["test_set"].map(lambda t: getattr(CATALOG.get(t), "num_classes", 0) == 1000)
    if unknown.any():
        looked = df.loc[unknown, "model"].map(testbed_model_type)
        df.loc[unknown, "model_type"] = [t for t, _ in looked]
        df.loc[unknown, "model_type_detail"] = [d for _, d in looked]
    return df
