"""Bad input, bad arguments and failing disks, command by command: each case ends in exit 2 and one line
naming what is wrong (or a correct result), never a traceback, and nothing outside the output folder
changes. Run in-process (`main([...])`) to stay fast."""

from __future__ import annotations

import argparse
import errno
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import run_cli, tree_hashes

from generalization import cli
from generalization.cli import evaluator_commands, main
from generalization.store.records import PredictionStore


@pytest.fixture(autouse=True)
def _weights_at_hand(torch_home, monkeypatch):
    """evaluate fetches every model's weights before it reads a test set: put them where a download would."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))


def _fails(capsys, tmp_path, pattern, *args, out: Path | None = None):
    """Exit 2, the pattern in the last stderr line, nothing outside ``out`` changed."""
    before = tree_hashes(tmp_path, skip=out)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2, err
    last = err.strip().splitlines()[-1]
    assert re.search(pattern, last), err
    assert tree_hashes(tmp_path, skip=out) == before
    return err


# ---------------------------------------------------------------------------------- every option


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for child in a.choices.values():
                yield from _parsers(child)


def test_every_option_has_help_and_shows_its_default():
    parser = cli.build_parser()
    for p in _parsers(parser):
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            assert a.help and a.help.strip(), f"{p.prog} {a.option_strings or a.dest}: no help text"
        text = p.format_help()
        for a in p._actions:
            if a.option_strings and a.default not in (None, argparse.SUPPRESS) and a.help != argparse.SUPPRESS:
                assert "(default:" in text, f"{p.prog}: defaults not shown"


# ---------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["evaluate", "--model", "m", "--dataset", "d", "--data-root", ".", "--out", "S", "--batch-size", "0"],
         "--batch-size: must be at least 1, got 0"),
        (["evaluate", "--model", "m", "--dataset", "d", "--data-root", ".", "--out", "S", "--device", "tpu9"],
         "--device: expected auto, cpu, cuda, cuda:N or mps, got 'tpu9'"),
        (["evaluate", "--model", "m", "--dataset", "d", "--data-root", ".", "--out", "S", "--num-workers", "-1"],
         "--num-workers: must be at least 0"),
        (["selection-frequency-report", "--votes", "v", "--cifar101-release", "r", "--cifar10-labels", "l",
          "--seeds", "-5"], "--seeds: must be at least 0, got -5"),
        (["selection-frequency-report", "--votes", "v", "--cifar101-release", "r", "--cifar10-labels", "l",
          "--per-class", "0"], "--per-class: must be at least 1, got 0"),
        (["near-duplicates", "--original", "a", "--candidates", "b", "--out", "O", "--size", "-4"],
         "--size: must be at least 1, got -4"),
        (["near-duplicates", "--original", "a", "--candidates", "b", "--out", "O", "--k", "abc"],
         "--k: expected an integer, got 'abc'"),
        (["sample", "threshold", "--candidates", "c", "--seed", "0", "--per-class", "3", "--tau", "5", "--out", "O"],
         r"--tau: must be in 0..1, got 5"),
        (["sample", "threshold", "--candidates", "c", "--seed", "0", "--per-class", "3", "--tau", "nan",
          "--out", "O"], r"--tau: must be in 0..1"),
        (["sample", "threshold", "--candidates", "c", "--seed", "0", "--per-class", "3", "--tau", "0.5",
          "--class-threshold", "cat", "--out", "O"], "--class-threshold: expected CLASS=TAU"),
        (["sample", "threshold", "--candidates", "c", "--seed", "0", "--per-class", "3", "--tau", "0.5",
          "--class-threshold", "cat=2", "--out", "O"], "--class-threshold: 'cat=2': TAU must be in 0..1"),
        (["sample", "top-images", "--candidates", "c", "--per-class", "0", "--out", "O"],
         "--per-class: must be at least 1"),
        (["sample", "keyword-counts", "--seed", "0", "--version", "v5", "--out", "O"], "--version: invalid choice"),
        (["tasks", "--candidates", "c", "--positives", "p", "--seed", "0", "--out", "O", "--url-template", "{id}"],
         r"--url-template: url template .\{id\}.: its only field must be \{image_id\}"),
        (["tasks", "--candidates", "c", "--positives", "p", "--seed", "0", "--out", "O", "--url-template", "x{0}"],
         r"--url-template: url template .x\{0\}.: its only field must be"),
        (["selection-frequency", "--counts", "c", "--labels", "l", "--min-control-accuracy", "2", "--out", "o.csv"],
         "--min-control-accuracy: must be in 0..1"),
        (["analyze", "--store", "S", "--out", "O", "--n-bootstrap", "0"], "--n-bootstrap: must be at least 1"),
        (["reproduce", "--seed", "-1"], "--seed: must be at least 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v[:1] + [x for x in v if x.startswith("--")][-1:]),
)
def test_bad_arguments(capsys, tmp_path, monkeypatch, args, pattern):
    monkeypatch.chdir(tmp_path)
    err = _fails(capsys, tmp_path, pattern, *args)
    assert err.count("\n") == 1 and err.endswith("--help)\n")


def test_out_is_a_folder_where_a_file_is_expected_and_the_reverse(capsys, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    _fails(capsys, tmp_path, "--out: .*/d is a folder; give a file name",
           "selection-frequency", "--counts", "c", "--labels", "l", "--out", tmp_path / "d")
    for cmd in (["analyze", "--store", "S"], ["sample", "top-images", "--candidates", "c", "--per-class", "1"],
                ["near-duplicates", "--original", "a", "--candidates", "b"]):
        _fails(capsys, tmp_path, "--out: .*/f exists and is not a folder", *cmd, "--out", tmp_path / "f")
    _fails(capsys, tmp_path, "--store: .*/f exists and is not a folder",
           "import", "testbed", "x.csv", "--store", tmp_path / "f")


# ---------------------------------------------------------------------------------- main: errors


def test_unexpected_error_is_one_line_with_a_hint_and_debug_shows_it(capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("something broke\nacross lines")

    monkeypatch.setattr(evaluator_commands, "_run_list_datasets", boom)
    rc, out, err = run_cli(capsys, "list-datasets")
    assert rc == 1
    assert err == ("generalization: internal error: RuntimeError: something broke across lines "
                   "(rerun with --debug for the traceback)\n")
    with pytest.raises(RuntimeError, match="something broke"):
        main(["--debug", "list-datasets"])
    with pytest.raises(RuntimeError, match="something broke"):
        main(["list-datasets", "--debug"])


def _mini_imagenetv2(root: Path, *, duplicate: bool = False) -> Path:
    """A 3-image stand-in for the ImageNetV2 release's layout (1,000 made-up wnids, one model)."""
    wnids = [f"n{i:08d}" for i in range(1000)]
    (root / "data" / "metadata").mkdir(parents=True)
    (root / "data" / "metadata" / "class_info.json").write_text(json.dumps([{"wnid": w} for w in wnids]))
    rng = np.random.default_rng(0)
    for name in ("imagenet-validation-original", "imagenetv2-b-33", "imagenetv2-a-44", "imagenetv2-c-12"):
        ids = ["a", "b", "a" if duplicate and name == "imagenetv2-b-33" else "c"]
        entries = [[i, wnids[k]] for i, k in zip(ids, (1, 2, 3), strict=True)]
        (root / "data" / "datasets").mkdir(parents=True, exist_ok=True)
        (root / "data" / "datasets" / f"{name}.json").write_text(json.dumps({"image_filenames": entries}))
        (root / "data" / "predictions" / name).mkdir(parents=True)
        np.save(root / "data" / "predictions" / name / "resnet.npy", rng.integers(0, 1000, (3, 5)))
    return root


def test_import_release_json_with_a_duplicate_id(capsys, tmp_path):
    rel = _mini_imagenetv2(tmp_path / "rel", duplicate=True)
    _fails(capsys, tmp_path, r"imagenetv2-b-33.json: image id 'a' is listed twice",
           "import", "imagenetv2", rel, "--store", tmp_path / "store", out=tmp_path / "store")


def test_disk_full_is_one_line_saying_what_was_written(capsys, tmp_path, monkeypatch):
    rel = _mini_imagenetv2(tmp_path / "rel")
    import generalization.files as files

    real, calls = files.os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    err = _fails(capsys, tmp_path, r"No space left on device; that file was not written .*5 file\(s\) were "
                 r"written completely before it \(last: .*\)", "import", "imagenetv2", rel,
                 "--store", tmp_path / "store", out=tmp_path / "store")
    assert err.startswith("generalization: error: ") and err.count("\n") == 1
    assert not list((tmp_path / "store").rglob("*.tmp"))
    # what was written is complete and valid: the rerun (with space) finishes the job
    monkeypatch.setattr(files.os, "fsync", real)
    assert run_cli(capsys, "import", "imagenetv2", rel, "--store", tmp_path / "store")[0] == 0
    assert run_cli(capsys, "verify-store", tmp_path / "store")[0] == 0


def test_read_only_finished_store_can_be_rechecked(capsys, tmp_path, monkeypatch):
    rel = _mini_imagenetv2(tmp_path / "rel")
    store = tmp_path / "store"
    assert run_cli(capsys, "import", "imagenetv2", rel, "--store", store)[0] == 0

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(store))

    monkeypatch.setattr("generalization.files.tempfile.mkstemp", refuse)
    monkeypatch.setattr("generalization.store.records.FileLock", refuse)
    rc, out, err = run_cli(capsys, "import", "imagenetv2", rel, "--store", store)
    assert rc == 0 and "0 records written, 4 already present" in out, err
    assert run_cli(capsys, "verify-store", store)[0] == 0
    # a write that is needed fails in one line that says nothing was written
    rel2 = _mini_imagenetv2(tmp_path / "rel2")
    np.save(rel2 / "data" / "predictions" / "imagenetv2-b-33" / "other.npy", np.zeros((3, 5), np.int64))
    _fails(capsys, tmp_path, r"Read-only file system; that file was not written .*nothing was written",
           "import", "imagenetv2", rel2, "--store", store)


# ---------------------------------------------------------------------------------- analyze


def test_analyze_votes_never_reads_outside_the_store(capsys, tmp_path):
    s = PredictionStore(tmp_path / "store")
    labels = np.arange(100) % 10
    s.put_labels("cifar10-test", labels, num_classes=10)
    s.put(source="cifar10.1-release", model="m", test_set="cifar10-test", predictions=labels)
    np.save(tmp_path / "outside.npy", labels[:, None])
    rec = s._record_json("cifar10.1-release", "m", "cifar10-test")
    body = json.loads(rec.read_text())
    body["predictions_file"] = "../../../../outside.npy"
    rec.write_text(json.dumps(body))
    np.save(tmp_path / "votes.npy", np.eye(10, dtype=np.int64)[labels] * 5)
    for extra in ([], ["--no-verify"]):
        _fails(capsys, tmp_path, r"m.json: not a valid store record \(predictions_file '../../../../outside.npy'",
               "analyze", "--store", s.root, "--out", tmp_path / "out", "--votes", tmp_path / "votes.npy", *extra,
               out=tmp_path / "out")


def test_analyze_needs_a_store(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    _fails(capsys, tmp_path, "empty: not a prediction store", "analyze", "--store", tmp_path / "empty",
           "--out", tmp_path / "out", out=tmp_path / "out")


# ---------------------------------------------------------------------------------- evaluate


def test_evaluate_manifest_listing_an_image_twice(capsys, tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in ("a", "b"):
        (root / f"{i}.png").write_bytes(b"")
    man = tmp_path / "twice.json"
    man.write_text(json.dumps({"image_filenames": [["a", 0], ["b", 1], ["a", 0]], "num_classes": 10}))
    _fails(capsys, tmp_path, r"twice.json: image id.*(listed twice.*'a'|'a'.*listed twice)", "evaluate", "--model",
           "cifar10/resnet20", "--dataset", man, "--data-root", root, "--out", tmp_path / "store",
           out=tmp_path / "store")


# ---------------------------------------------------------------------------------- sampler


def _tables(tmp_path: Path):
    cand = pd.DataFrame([(f"{c}_{i:03d}", c) for c in ("cat", "dog") for i in range(50)], columns=["image_id", "class"])
    pos = pd.DataFrame([(f"val_{c}_{i}", c) for c in ("cat", "dog") for i in range(6)], columns=["image_id", "class"])
    cand.to_csv(tmp_path / "cand.csv", index=False)
    pos.to_csv(tmp_path / "pos.csv", index=False)
    return tmp_path / "cand.csv", tmp_path / "pos.csv"


def test_tasks_reused_out_folder_keeps_no_old_pages(capsys, tmp_path):
    cand, pos = _tables(tmp_path)
    out = tmp_path / "out"
    assert run_cli(capsys, "tasks", "--candidates", cand, "--positives", pos, "--seed", 0, "--out", out)[0] == 0
    assert len(list((out / "pages").glob("*.html"))) == 4  # 50 per class: 2 tasks each
    (out / "pages" / "notes.html").write_text("mine")  # not a page the command makes: kept
    small = pd.read_csv(cand).head(10)
    small.to_csv(tmp_path / "small.csv", index=False)
    before = tree_hashes(tmp_path, skip=out)
    assert run_cli(capsys, "tasks", "--candidates", tmp_path / "small.csv", "--positives", pos, "--seed", 0,
                "--out", out)[0] == 0
    assert sorted(p.name for p in (out / "pages").iterdir()) == ["notes.html", "task-000000.html"]
    tasks = pd.read_csv(out / "tasks.csv")
    assert tasks["task_id"].unique().tolist() == ["task-000000"]
    assert tree_hashes(tmp_path, skip=out) == before
    assert run_cli(capsys, "tasks", "--candidates", tmp_path / "small.csv", "--positives", pos, "--seed", 0,
                "--out", out, "--no-pages")[0] == 0
    assert sorted(p.name for p in (out / "pages").iterdir()) == ["notes.html"]


def test_tasks_duplicate_control_images(capsys, tmp_path):
    cand, pos = _tables(tmp_path)
    p = pd.read_csv(pos)
    pd.concat([p, p.head(1)]).to_csv(tmp_path / "pos2.csv", index=False)
    _fails(capsys, tmp_path, r"pos2.csv: positives table lists image 'val_cat_0' twice", "tasks", "--candidates",
           cand, "--positives", tmp_path / "pos2.csv", "--seed", 0, "--out", tmp_path / "out", out=tmp_path / "out")


def test_task_record_with_shown_a_string_is_a_problem_row(capsys, tmp_path):
    recs = [
        {"task_id": "t1", "class": "cat", "worker_id": "w1", "shown": "cat_001", "selected": ["cat_001"]},
        {"task_id": "t1", "class": "cat", "worker_id": "w2", "shown": ["cat_001", "cat_002"], "selected": ["cat_001"]},
        {"task_id": "t1", "class": "cat", "worker_id": "w3", "shown": ["cat_001", "cat_001"], "selected": []},
        {"task_id": "t1", "class": "cat", "worker_id": "w4", "shown": [["x"]], "selected": []},
        {"task_id": "t1", "class": "cat", "worker_id": "w5", "shown": ["cat_001"], "selected": "cat_001"},
        {"task_id": "t1", "class": "cat", "worker_id": "", "shown": ["cat_001"], "selected": []},
    ]
    (tmp_path / "r.json").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out = tmp_path / "out" / "sf.csv"
    rc, stdout, err = run_cli(capsys, "selection-frequency", tmp_path / "r.json", "--out", out)
    assert rc == 0, err
    sf = pd.read_csv(out, dtype={"image_id": str})
    assert sf[["image_id", "num_annotations", "num_selected"]].values.tolist() == [["cat_001", 1, 1], ["cat_002", 1, 0]]
    problems = pd.read_csv(tmp_path / "out" / "sf.problems.csv")
    assert problems["line"].tolist() == [1, 3, 4, 5, 6]
    reasons = problems["reason"].tolist()
    assert "'shown' must be a list of image ids, got str 'cat_001'" in reasons[0]
    assert "'shown' lists image 'cat_001' twice" in reasons[1]
    assert "'shown' holds ['x'], not an image id" in reasons[2]
    assert "'selected' must be a list" in reasons[3]
    assert "'worker_id' must be a non-empty string" in reasons[4]


def test_csv_outputs_neutralise_formulas(capsys, tmp_path):
    rows = [("=HYPERLINK(\"http://x\")", "cat", "w1", "t1", "yes"), ("@SUM(A1)", "cat", "w1", "t1", "no"),
            ("+1", "cat", "w1", "t1", "no"), ("-2", "cat", "w1", "t1", "no"), ("ok", "\tcat", "w1", "t1", "yes")]
    pd.DataFrame(rows, columns=["image_id", "class", "worker_id", "task_id", "selected"]).to_csv(
        tmp_path / "a.csv", index=False)
    out = tmp_path / "out" / "sf.csv"
    assert run_cli(capsys, "selection-frequency", tmp_path / "a.csv", "--out", out)[0] == 0
    cells = pd.read_csv(out, dtype=str, keep_default_na=False)
    ids = set(cells["image_id"])
    assert {"'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "+1", "-2", "ok"} == ids  # numbers stay numbers
    assert "'\tcat" in set(cells["class"])
    for text in out.read_text().splitlines()[1:]:
        for cell in text.split(","):
            assert not cell.strip('"').startswith(("=", "@", "\t")), text


def test_sample_threshold_class_threshold_parsed(capsys, tmp_path):
    rows = [(f"{c}_{i}", c, 0.1 * (i % 10), 5) for c in ("cat", "dog") for i in range(20)]
    pd.DataFrame(rows, columns=["image_id", "class", "selection_frequency", "num_annotations"]).to_csv(
        tmp_path / "c.csv", index=False)
    rc, out, err = run_cli(capsys, "sample", "threshold", "--candidates", tmp_path / "c.csv", "--seed", 0,
                        "--per-class", 2, "--tau", 0.5, "--class-threshold", "cat=0.85", "--no-figure",
                        "--out", tmp_path / "o")
    assert rc == 0, err
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["num_images"] == 4


TINY_MODEL = '''
import torch
from torch import nn
from generalization.evaluator.decode import Preprocess


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(nn.functional.adaptive_avg_pool2d(x.float(), 8).flatten(1))


def build():
    return Tiny().eval(), Preprocess(32, None)
'''


def test_evaluate_rerun_on_a_read_only_finished_store(capsys, tmp_path, monkeypatch, cifar_1000):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "i16_tiny.py").write_text(TINY_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    args = ["evaluate", "--model", "i16_tiny:build", "--dataset", "cifar10-test", "--data-root", cifar_1000,
            "--out", tmp_path / "store", "--batch-size", 250, "--device", "cpu"]
    rc, out, err = run_cli(capsys, *args)
    assert rc == 0, err
    before = tree_hashes(tmp_path)

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "store"))

    monkeypatch.setattr("generalization.files.tempfile.mkstemp", refuse)
    monkeypatch.setattr("generalization.store.records.FileLock", refuse)
    rc, out2, err = run_cli(capsys, *args)
    assert rc == 0, err
    assert "already in" in out2 and "nothing to do" in out2
    assert tree_hashes(tmp_path) == before
    # --overwrite recomputes, finds the same predictions, and has nothing to write either
    assert run_cli(capsys, *args, "--overwrite")[0] == 0
    assert tree_hashes(tmp_path) == before
    monkeypatch.undo()
    assert run_cli(capsys, "verify-store", tmp_path / "store")[0] == 0


# ---------------------------------------------------------------------------------- bad input files

_FREQ = "image_id,class,selection_frequency,num_annotations\n" + "".join(
    f"{c}_{i},{c},{0.1 * (i % 10):.1f},5\n" for c in ("cat", "dog") for i in range(20)
)
_ACC = "source,model,test_set,n,top1_correct,top5_correct\n"
BAD_FILES = {
    # name: (files {name: text}, args, pattern)
    "accuracies-top1-above-n": ({"a.csv": _ACC + "s,m,imagenet-val,2000,5000,\n"},
                                ["analyze", "--accuracies", "a.csv", "--out", "out"],
                                "a.csv: line 2: top1_correct must be in 0..n"),
    "accuracies-many": ({"a.csv": _ACC + "s,m,imagenet-val,2000,many,\n"},
                        ["analyze", "--accuracies", "a.csv", "--out", "out"],
                        "a.csv: line 2: top1_correct must be a whole number, got 'many'"),
    "accuracies-n-zero": ({"a.csv": _ACC + "s,m,imagenet-val,0,0,\n"},
                          ["analyze", "--accuracies", "a.csv", "--out", "out"], "a.csv: line 2: n must be positive"),
    "accuracies-top5-below-top1": ({"a.csv": _ACC + "s,m,imagenet-val,100,50,40\n"},
                                   ["analyze", "--accuracies", "a.csv", "--out", "out"],
                                   "a.csv: line 2: top5_correct must be in top1_correct..n"),
    "targets-not-numbers": ({"c.csv": _FREQ, "t.csv": "class,0,1,2,3,4\ncat,1,x,0,0,0\n"},
                            ["sample", "matched-frequency", "--candidates", "c.csv", "--seed", "0", "--targets",
                             "t.csv", "--out", "out"], "t.csv: line 2: target counts must be whole numbers >= 0"),
    "targets-no-class": ({"c.csv": _FREQ, "t.csv": "klass,a\ncat,1\n"},
                         ["sample", "matched-frequency", "--candidates", "c.csv", "--seed", "0", "--targets",
                          "t.csv", "--out", "out"], "t.csv: expected columns class, 0, 1, 2, 3, 4"),
    "keyword-pools-a-list": ({"p.json": "[1, 2]"},
                             ["sample", "keyword-counts", "--pools", "p.json", "--counts", "p.json", "--start",
                              "p.json", "--seed", "0", "--out", "out"], r"p.json: expected a JSON object"),
    "frequency-negative-annotations": ({"c.csv": "image_id,class,selection_frequency,num_annotations\na,cat,0.5,-3\n"},
                                       ["sample", "top-images", "--candidates", "c.csv", "--per-class", "1",
                                        "--out", "out"], r"c.csv: num_annotations must be a whole number >= 0"),
    "frequency-empty-id": ({"c.csv": "image_id,class,selection_frequency\n,cat,0.5\n"},
                           ["sample", "top-images", "--candidates", "c.csv", "--per-class", "1", "--out", "out"],
                           r"c.csv: empty image_id or class on line\(s\) \[2\]"),
    "manifest-num-classes-text": ({"m.json": '{"image_filenames": [["a", 0]], "num_classes": "ten"}'},
                                  ["evaluate", "--model", "cifar10/resnet20", "--dataset", "m.json", "--data-root",
                                   ".", "--out", "out"], "m.json: 'num_classes' is 'ten', not valid for a manifest"),
    "manifest-classes-a-number": ({"m.json": '{"image_filenames": [["a", 0]], "classes": 5}'},
                                  ["evaluate", "--model", "cifar10/resnet20", "--dataset", "m.json", "--data-root",
                                   ".", "--out", "out"], "m.json: 'classes' is '5'"),
    "manifest-id-not-text": ({"m.json": '{"image_filenames": [[["a"], 0]], "num_classes": 10}'},
                             ["evaluate", "--model", "cifar10/resnet20", "--dataset", "m.json", "--data-root",
                              ".", "--out", "out"], r"m.json: image_filenames\[0\]: image id \['a'\] is not a string"),
    "manifest-name-a-path": ({"m.json": '{"image_filenames": [["a", 0]], "num_classes": 10, "name": "../x"}'},
                             ["evaluate", "--model", "cifar10/resnet20", "--dataset", "m.json", "--data-root",
                              ".", "--out", "out"], "m.json: 'name' is '../x', not valid for a manifest"),
    "store-json-not-a-store": ({"s/store.json": "[1]"}, ["analyze", "--store", "s", "--out", "out"],
                               "s/store.json: not a generalization store"),
    "task-table-duplicate": ({"a.csv": "worker_id,task_id,image_id,class,selected\nw,t,a,cat,yes\n",
                              "t.csv": "task_id,class,position,image_id,role,image_class,url\n"
                                       "t,cat,0,a,candidate,cat,u\nt,cat,1,a,candidate,cat,u\n"},
                             ["selection-frequency", "a.csv", "--tasks", "t.csv", "--out", "out/sf.csv"],
                             r"t.csv: an image listed twice in one task, line\(s\) \[3\]"),
    "annotations-not-utf8": ({"r.json": None}, ["selection-frequency", "r.json", "--out", "out/sf.csv"],
                             "r.json: not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_files(capsys, tmp_path, monkeypatch, case):
    files, args, pattern = BAD_FILES[case]
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            (tmp_path / name).write_bytes(b"\xff\xfe\x00{")
        else:
            (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    _fails(capsys, tmp_path, pattern, *args, out=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
