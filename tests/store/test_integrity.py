"""Store integrity: the store touches no path it did not make, and a tampered record, predictions or labels
file is found (by `verify`, by `analyze`, by `verify-store`), with exit 2, one line naming the record, and
nothing outside the store or --out changed."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from builders import run_cli, tree_hashes

from generalization.files import DataError, load_npy
from generalization.store.records import PredictionStore

TS = "cifar10.1-v6"


@pytest.fixture
def store(tmp_path):
    """A store with one record with top-5 predictions, one top-1 record and one accuracy-only record."""
    rng = np.random.default_rng(0)
    s = PredictionStore(tmp_path / "store")
    labels = rng.integers(0, 10, 200)
    s.put_labels(TS, labels, num_classes=10, image_ids=[f"img{i}" for i in range(200)])
    pred = rng.integers(0, 10, (200, 5))
    pred[:150, 0] = labels[:150]
    s.put(source="evaluate", model="m/a", test_set=TS, predictions=pred)
    s.put(source="evaluate", model="b", test_set=TS, predictions=rng.integers(0, 10, 200))
    s.put(source="published", model="c", test_set=TS, n=2000, top1_correct=1708, top5_correct=1900)
    victim = tmp_path / "victim.npy"  # a file outside the store that nothing may read or delete
    np.save(victim, pred)
    return s, labels, pred, victim


def _record(s: PredictionStore, model: str, source: str = "evaluate") -> Path:
    return s._record_json(source, model, TS)


def _edit(path: Path, **fields) -> None:
    body = json.loads(path.read_text())
    body.update(fields)
    path.write_text(json.dumps(body))


# ---------------------------------------------------------------------------------- paths it did not make


@pytest.mark.parametrize("name", ["../../victim.npy", "ABSOLUTE", "m%2Fa.json", "../b.0123456789ab.npy"])
def test_overwrite_never_deletes_a_file_the_record_names_outside(store, tmp_path, name):
    s, labels, pred, victim = store
    name = str(victim) if name == "ABSOLUTE" else name
    rec = _record(s, "m/a")
    _edit(rec, predictions_file=name)
    before = tree_hashes(tmp_path, skip=s.root)
    with pytest.raises(DataError, match="not a valid store record.*predictions_file"):
        s.predictions("evaluate", "m/a", TS)
    # analyze --votes reads predictions: refused, nothing read from outside
    with pytest.raises(DataError, match="predictions_file"):
        s.records()
    new = np.roll(pred, 1, axis=0)
    s.put(source="evaluate", model="m/a", test_set=TS, predictions=new, overwrite=True)
    assert tree_hashes(tmp_path, skip=s.root) == before  # the victim is still there, unchanged
    np.testing.assert_array_equal(s.predictions("evaluate", "m/a", TS), new)
    s.verify()


def test_a_bad_record_without_overwrite_is_an_error_not_a_deletion(store, tmp_path):
    s, labels, pred, victim = store
    _edit(_record(s, "m/a"), predictions_file="../../victim.npy")
    with pytest.raises(DataError, match="not a valid store record"):
        s.put(source="evaluate", model="m/a", test_set=TS, predictions=np.roll(pred, 1, axis=0))
    assert victim.exists()


@pytest.mark.parametrize("name", ["..", ".", "../../x", "/etc", ".hidden", "a/../../b"])
def test_names_cannot_leave_records(tmp_path, name):
    s = PredictionStore(tmp_path / "store")
    s.put_labels(name, np.arange(10) % 3, num_classes=3)
    s.put(source=name, model=name, test_set=name, predictions=np.arange(10) % 3)
    s.put(source="x", model="y", test_set=name, n=10, top1_correct=3)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    for p in files:
        rel = p.relative_to(s.root)
        assert rel.parts[0] in ("records", "labels", "store.json")
        assert not any(part in (".", "..") or part.startswith(".") for part in rel.parts)
    recs = s.records()
    assert [(r.source, r.model, r.test_set) for r in recs] == sorted([(name, name, name), ("x", "y", name)])
    assert s.test_sets() == [name]
    assert s.verify().ok


def test_links_out_of_the_store_are_not_read(store, tmp_path):
    s, labels, pred, victim = store
    rec = _record(s, "m/a")
    body = json.loads(rec.read_text())
    target = rec.parent / body["predictions_file"]
    target.unlink()
    target.symlink_to(victim)  # the same bytes, but outside the store
    with pytest.raises(DataError, match="resolves outside the store"):
        s.predictions("evaluate", "m/a", TS)
    # a link inside the store to a text file: called a link (and never "pickled data")
    (rec.parent / "notes.txt").write_text("hello\n")
    target.unlink()
    target.symlink_to(rec.parent / "notes.txt")
    with pytest.raises(DataError, match="a link, not a predictions file"):
        s.predictions("evaluate", "m/a", TS)


def test_load_npy_names_what_the_file_holds(tmp_path):
    (tmp_path / "t.txt").write_text("1 2 3\n")
    (tmp_path / "link.npy").symlink_to(tmp_path / "t.txt")
    with pytest.raises(DataError, match=r"link.npy: not a .npy file \(no NPY header"):
        load_npy(tmp_path / "link.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds an object array"):
        load_npy(tmp_path / "o.npy")
    np.save(tmp_path / "ok.npy", np.arange(100))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:200])
    with pytest.raises(DataError, match="not a valid or complete .npy"):
        load_npy(tmp_path / "cut.npy")
    with pytest.raises(DataError, match="not a file"):
        load_npy(tmp_path)


# ------------------------------------------------------------------------------------- tampering found


def _tamper_counts(s, **_):
    _edit(_record(s, "m/a"), top1_correct=170)  # consistent with top-5, but not the predictions


def _tamper_predictions_truncated(s, **_):
    rec = _record(s, "m/a")
    f = rec.parent / json.loads(rec.read_text())["predictions_file"]
    f.write_bytes(f.read_bytes()[:-40])


def _tamper_predictions_deleted(s, **_):
    rec = _record(s, "b")
    (rec.parent / json.loads(rec.read_text())["predictions_file"]).unlink()


def _tamper_predictions_swapped(s, pred, **_):
    rec = _record(s, "m/a")
    f = rec.parent / json.loads(rec.read_text())["predictions_file"]
    np.save(f, np.roll(pred, 1, axis=0).astype(np.int16))


def _tamper_labels(s, labels, **_):
    np.save(s.root / "labels" / f"{TS}.npy", np.roll(labels, 1).astype(np.int64))


def _tamper_image_ids(s, **_):
    path = s.root / "labels" / f"{TS}.ids.json"
    ids = json.loads(path.read_text())
    path.write_text(json.dumps([ids[1], ids[0], *ids[2:]]))


def _tamper_many(s, **_):
    _edit(_record(s, "c", "published"), top1_correct="many")


def _tamper_more_than_n(s, **_):
    _edit(_record(s, "c", "published"), top1_correct=5000)


def _tamper_n_zero(s, **_):
    _edit(_record(s, "c", "published"), n=0, top1_correct=0, top5_correct=0)


def _tamper_n_negative(s, **_):
    _edit(_record(s, "c", "published"), n=-5)


def _tamper_top5_below_top1(s, **_):
    _edit(_record(s, "c", "published"), top5_correct=1000)


def _tamper_renamed(s, **_):
    _edit(_record(s, "b"), model="other")


TAMPER = {
    "counts": (_tamper_counts, "m%2Fa.json: counts do not match its predictions"),
    "truncated": (_tamper_predictions_truncated, "m%2Fa.*not a valid or complete .npy"),
    "deleted": (_tamper_predictions_deleted, r"b\.[0-9a-f]{12}\.npy: file not found"),
    "swapped": (_tamper_predictions_swapped, r"content does not match its record .*m%2Fa.json"),
    "labels": (_tamper_labels, "labels of cifar10.1-v6 do not match their record"),
    "image-ids": (_tamper_image_ids, "image ids of cifar10.1-v6 do not match their record"),
    "many": (_tamper_many, "c.json: not a valid store record.*top1_correct must be an integer"),
    "more-than-n": (_tamper_more_than_n, "c.json: not a valid store record.*top1_correct must be an integer in 0..2000"),
    "n-zero": (_tamper_n_zero, "c.json: not a valid store record.*n must be a positive integer"),
    "n-negative": (_tamper_n_negative, "c.json: not a valid store record.*n must be a positive integer"),
    "top5-below-top1": (_tamper_top5_below_top1, "c.json: not a valid store record.*top5_correct"),
    "renamed": (_tamper_renamed, "b.json: not a valid store record.*whose record is"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampering_is_found_by_analyze_and_verify_store(store, tmp_path, capsys, case):
    s, labels, pred, victim = store
    tamper, message = TAMPER[case]
    assert run_cli(capsys, "verify-store", s.root)[0] == 0
    tamper(s, labels=labels, pred=pred)
    before = tree_hashes(tmp_path)
    with pytest.raises(DataError, match=message):
        s.verify()
    rc, out, err = run_cli(capsys, "verify-store", s.root)
    assert rc == 2 and err.count("\n") == 1
    assert __import__("re").search(message, err), err
    rc, out, err = run_cli(capsys, "analyze", "--store", s.root, "--out", tmp_path / "out", "--n-bootstrap", 10)
    assert rc == 2 and err.startswith("generalization: error: ") and err.count("\n") == 1
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()  # nothing written: the check comes first
    assert tree_hashes(tmp_path) == before


def test_verify_report_and_timing_shape(store):
    s, *_ = store
    r = s.verify()
    assert (r.records, r.with_predictions, r.test_sets, r.ok) == (3, 2, 1, True)
    assert "3 records (2 with predictions" in r.summary()


def test_accuracy_only_records_are_checked_on_write(tmp_path):
    s = PredictionStore(tmp_path / "s")
    for kw, msg in [
        ({"n": 0, "top1_correct": 0}, "n must be a positive integer"),
        ({"n": -5, "top1_correct": 0}, "n must be a positive integer"),
        ({"n": 10, "top1_correct": 11}, "top1_correct must be an integer in 0..10"),
        ({"n": 10, "top1_correct": "many"}, "top1_correct must be an integer"),
        ({"n": 10.5, "top1_correct": 1}, "n must be a positive integer"),
        ({"n": 10, "top1_correct": 6, "top5_correct": 5}, r"top5_correct must be null or an integer in top1_correct..n \(6..10\), got 5"),
    ]:
        with pytest.raises(DataError, match=msg):
            s.put(source="t", model="m", test_set="imagenet-val", **kw)
    with pytest.raises(DataError, match="non-empty string"):
        s.put(source="t", model="", test_set="imagenet-val", n=10, top1_correct=1)
    with pytest.raises(DataError, match="no labels"):
        s.put_labels("x", np.array([], dtype=np.int64), num_classes=3)
    with pytest.raises(DataError, match="listed twice"):
        s.put_labels("x", np.array([0, 1]), num_classes=3, image_ids=["a", "a"])
    assert not (tmp_path / "s" / "records").exists()


def test_finished_store_is_readable_without_write_access(store, monkeypatch):
    """Re-putting what is there (a resumed run, a re-import) takes no lock and writes nothing."""
    s, labels, pred, victim = store

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(s.root))

    monkeypatch.setattr("generalization.files.tempfile.mkstemp", refuse)
    monkeypatch.setattr("generalization.store.records.FileLock", refuse)
    s.put_labels(TS, labels, num_classes=10)
    s.put(source="evaluate", model="m/a", test_set=TS, predictions=pred)
    s.put(source="published", model="c", test_set=TS, n=2000, top1_correct=1708, top5_correct=1900)
    assert s.verify().ok and len(s.accuracy_table(verify=True)) == 3
    with pytest.raises(OSError, match="Read-only"):
        s.put(source="evaluate", model="new", test_set=TS, predictions=pred)
