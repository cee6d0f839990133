"""Sampler -> evaluator -> analysis as one chain (issue 15): one id scheme, manifests that carry the label
space, the original and provenance, declared pairs in analyze, and the user-journey frictions.

Small synthetic images (8x8) and a tiny model written to a file keep these fast; the real-data example is
tests/test_example_new_test_set.py.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from generalization import test_sets
from generalization.cli import main
from generalization.files import DataError

CLASSES = ["cat", "dog", "eel"]  # the class folders
LABEL_SPACE = [*CLASSES, "fox", "gnu", "hen"]  # the models' 6 outputs (a label space wider than the folders)

MODEL_PY = '''
import torch
from torch import nn

def build(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 6))
    return model, {"input_size": 8, "resize_size": None, "interpolation": "bilinear",
                   "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

def build1():
    return build(1)

def build2():
    return build(2)
'''


@pytest.fixture(autouse=True)
def _keep_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # `evaluate --threads` sets the process-wide count (declarations: conftest)


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """images/<class>/<NNNN>.png: 12 per class; the same file names in every class folder (same stems)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for k in range(12):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / c / f"{k:04d}.png")
    return root


def _tables(tmp_path: Path, pool: Path) -> tuple[Path, Path]:
    """original.csv (first 4 per class) and candidates.csv (the other 8), ids = <class>/<file>."""
    rows = [(f"{c}/{k:04d}.png", c, 1.0 - 0.05 * (k % 5), 10) for c in CLASSES for k in range(12)]
    df = pd.DataFrame(rows, columns=["image_id", "class", "selection_frequency", "num_annotations"])
    orig = df[df["image_id"].str[-8:].str[:4].astype(int) < 4]
    cand = df.drop(orig.index)
    orig.to_csv(tmp_path / "original.csv", index=False)
    cand.to_csv(tmp_path / "candidates.csv", index=False)
    return tmp_path / "original.csv", tmp_path / "candidates.csv"


def _model_file(tmp_path: Path) -> Path:
    p = tmp_path / "tiny_model.py"
    p.write_text(MODEL_PY)
    return p


def _chain(tmp_path: Path, pool: Path, capsys) -> dict[str, Path]:
    orig, cand = _tables(tmp_path, pool)
    assert main(["manifest", "--table", str(orig), "--name", "toy-original", "--classes", ",".join(LABEL_SPACE),
                 "--out", str(tmp_path / "original" / "manifest.json")]) == 0
    assert main(["near-duplicates", "--original", str(orig), "--candidates", str(cand), "--image-root", str(pool),
                 "--out", str(tmp_path / "nd")]) == 0
    assert main(["sample", "top-images", "--candidates", str(cand), "--per-class", "5", "--seed", "1",
                 "--exclusions", str(tmp_path / "nd" / "exclusions.csv"), "--name", "toy-new",
                 "--replicates", "toy-original", "--classes", ",".join(LABEL_SPACE), "--no-figure",
                 "--out", str(tmp_path / "new")]) == 0
    capsys.readouterr()
    return {"original": orig, "candidates": cand, "new": tmp_path / "new" / "manifest.json",
            "orig_manifest": tmp_path / "original" / "manifest.json"}


def test_one_id_scheme_from_candidates_to_evaluation(tmp_path, pool, capsys, monkeypatch):
    paths = _chain(tmp_path, pool, capsys)
    # near-duplicate decisions and exclusions speak the candidate table's ids
    cand_ids = pd.read_csv(paths["candidates"])["image_id"].tolist()
    decisions = pd.read_csv(tmp_path / "nd" / "decisions.csv")
    assert decisions["candidate_id"].tolist() == cand_ids
    m = json.loads(paths["new"].read_text())
    ids = [i for i, _ in m["image_filenames"]]
    assert set(ids) <= set(cand_ids) and len(ids) == 15
    # the manifest records each id's file, the label space, the original and provenance
    assert m["image_files"] == ids
    assert m["classes"] == LABEL_SPACE and m["original"] == "toy-original" and m["name"] == "toy-new"
    prov = m["provenance"]
    assert prov["strategy"] == "top_images" and prov["seed"] == 1
    assert prov["inputs"]["candidates"]["sha256"] == hashlib.sha256(paths["candidates"].read_bytes()).hexdigest()
    assert prov["inputs"]["exclusions"]["sha256"] == hashlib.sha256(
        (tmp_path / "nd" / "exclusions.csv").read_bytes()).hexdigest()
    # evaluate reads the manifest as it is, though every class folder has the same file names (same stems)
    monkeypatch.chdir(tmp_path)
    model = _model_file(tmp_path)
    store = tmp_path / "store"
    rc = main(["evaluate", "--model", f"{model}:build", "--name", "tiny", "--dataset", str(paths["orig_manifest"]),
               "--dataset", str(paths["new"]), "--data-root", str(pool), "--out", str(store), "--device", "cpu",
               "--threads", "1"])
    assert rc == 0
    import torch

    assert torch.get_num_threads() == 1  # --threads took effect
    from generalization.store.records import PredictionStore

    st = PredictionStore(store)
    assert st.image_ids("toy-new") == ids
    labels = st.labels("toy-new")
    assert labels.tolist() == [LABEL_SPACE.index(c) for _, c in m["image_filenames"]]
    acc = st.accuracy_table()
    assert set(acc["model"]) == {"tiny"}  # the display name, not the file path
    # independent check of the stored accuracy: the model run by hand on the listed files
    import torch

    sys.path.insert(0, str(tmp_path))
    try:
        import tiny_model
    finally:
        sys.path.remove(str(tmp_path))
    net, _ = tiny_model.build()
    x = np.stack([np.asarray(Image.open(pool / f).convert("RGB")) for f in m["image_files"]]).astype(np.float32)
    x = (x / 255.0 - 0.5) / 0.25
    with torch.no_grad():
        pred = net(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).argmax(1).numpy()
    row = acc[acc["test_set"] == "toy-new"].iloc[0]
    assert row["top1_correct"] == int((pred == labels).sum())


def test_analyze_pairs_a_declared_new_test_set(tmp_path, pool, capsys, monkeypatch):
    paths = _chain(tmp_path, pool, capsys)
    model = _model_file(tmp_path)
    store = tmp_path / "store"
    args = ["evaluate", "--data-root", str(pool), "--out", str(store), "--device", "cpu", "--threads", "1",
            "--dataset", str(paths["orig_manifest"]), "--dataset", str(paths["new"])]
    for i, fn in enumerate(["build", "build1", "build2"]):  # a trend needs three models
        args += ["--model", f"{model}:{fn}", "--name", f"tiny{i}"]
    assert main(args) == 0
    test_sets.reset_declared()  # analyze must learn the pair from the store alone
    out = tmp_path / "analysis"
    assert main(["analyze", "--store", str(store), "--out", str(out), "--n-bootstrap", "20"]) == 0
    per_model = pd.read_csv(out / "per_model.csv")
    assert set(zip(per_model["original_test_set"], per_model["new_test_set"], strict=True)) == {("toy-original", "toy-new")}
    fits = pd.read_csv(out / "fits.csv")
    assert set(fits["new"]) == {"toy-new"}
    assert (out / "toy-original_linear.png").is_file()
    report = (out / "REPORT.md").read_text()
    assert "toy-new" in report
    # gaps: one row per model, the gap = original - new from the stored counts (independent arithmetic)
    assert main(["gaps", "--store", str(store), "--variant", "toy-new=null", "--out", str(tmp_path / "g.csv")]) == 0
    g = pd.read_csv(tmp_path / "g.csv")
    assert list(g.columns) == ["variant", "model", "n_original", "original_top1", "n_new", "new_top1", "gap",
                               "gap_ci_low", "gap_ci_high"]
    acc = pd.read_csv(out / "accuracies.csv")
    for r in g.itertuples():
        o = acc[(acc["model"] == r.model) & (acc["test_set"] == "toy-original")].iloc[0]
        n = acc[(acc["model"] == r.model) & (acc["test_set"] == "toy-new")].iloc[0]
        assert r.n_original == 12 and r.n_new == 15
        assert r.gap == pytest.approx(100 * o["top1_correct"] / 12 - 100 * n["top1_correct"] / 15, abs=1e-3)
        assert r.gap_ci_low <= r.gap <= r.gap_ci_high
    assert main(["gaps", "--store", str(store), "--variant", "nosuch=x", "--out", str(tmp_path / "g2.csv")]) == 2
    assert "no paired accuracies for ['nosuch']" in capsys.readouterr().err
    # analyze --accuracies alone still pairs them (test_sets.json is written beside accuracies.csv)
    test_sets.reset_declared()
    assert main(["analyze", "--accuracies", str(out / "accuracies.csv"), "--out", str(tmp_path / "a2"),
                 "--n-bootstrap", "20"]) == 0
    assert set(pd.read_csv(tmp_path / "a2" / "per_model.csv")["new_test_set"]) == {"toy-new"}


def test_plot_pair_works_for_any_pair_and_says_when_there_is_nothing(tmp_path):
    from generalization.analysis import plots

    rows = []
    for i, (a, b) in enumerate([(80, 70), (85, 76), (90, 83)]):
        rows += [{"source": "evaluate", "model": f"m{i}", "test_set": "mine-orig", "n": 100, "top1_correct": a},
                 {"source": "evaluate", "model": f"m{i}", "test_set": "mine-new", "n": 100, "top1_correct": b}]
    from generalization.metrics import accuracy_table_from_counts

    table = accuracy_table_from_counts(pd.DataFrame(rows))
    table["flag"] = ""
    test_sets.declare("mine-orig", original=None, num_classes=10, num_images=100, title="Mine (original)")
    test_sets.declare("mine-new", original="mine-orig", num_classes=10, num_images=100, title="Mine (new)")
    ax = plots.plot_pair(table, "mine-orig", "mine-new")
    assert "Mine (new)" in ax.get_ylabel()
    with pytest.raises(DataError, match="no model has accuracies"):
        plots.plot_pair(table, "mine-orig", "nowhere")


def test_builtin_name_with_other_contents_is_refused(tmp_path, pool, capsys):
    orig, _ = _tables(tmp_path, pool)
    m = tmp_path / "m.json"
    # the sampler refuses to write it ...
    assert main(["manifest", "--table", str(orig), "--name", "cifar10-test", "--out", str(m)]) == 2
    err = capsys.readouterr().err
    assert "cifar10-test" in err and "10,000" in err and "Traceback" not in err
    # ... and the evaluator refuses to read one written by hand
    pairs = [[f"{c}/{k:04d}.png", c] for c in CLASSES for k in range(4)]
    m.write_text(json.dumps({"name": "cifar10-test", "classes": CLASSES, "image_filenames": pairs}))
    rc = main(["evaluate", "--model", f"{_model_file(tmp_path)}:build", "--dataset", str(m), "--data-root",
               str(pool), "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 2 and "built-in test set" in err and "12 images" in err and "Traceback" not in err


def test_manifest_label_space_is_the_declared_one(tmp_path, pool):
    from generalization.evaluator.datasets import load_manifest_dataset

    names = [f"c{i}" for i in range(10)]
    pairs = [["cat/0000.png", "c3"], ["dog/0001.png", "c5"]]  # only 2 of 10 classes used
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"name": "x", "classes": names, "image_filenames": pairs}))
    ds = load_manifest_dataset(pool, m)
    assert ds.num_classes == 10 and ds.labels.tolist() == [3, 5]
    assert [p.relative_to(pool).as_posix() for p in ds.paths] == ["cat/0000.png", "dog/0001.png"]


def test_missing_weights_offline_is_one_line_before_decoding(tmp_path, pool, capsys, monkeypatch):
    import urllib.error

    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    decoded = []
    from generalization.evaluator import runner

    monkeypatch.setattr(runner, "decode_groups", lambda *a, **k: decoded.append(1))
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"name": "x", "classes": CLASSES, "image_filenames": [["cat/0000.png", "cat"]]}))
    rc = main(["evaluate", "--model", "cifar10/resnet20", "--dataset", str(m), "--data-root", str(pool),
               "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 2 and not decoded
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "resnet20-12fca82f.th" in err and str(tmp_path / "empty_torch_home" / "hub" / "checkpoints") in err


def test_model_from_the_working_directory_and_bad_model_files(tmp_path, capsys, monkeypatch):
    from generalization.evaluator.models import model_spec

    (tmp_path / "my_module.py").write_text(MODEL_PY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    spec = model_spec("my_module:build")
    assert spec.num_classes == 6
    sys.modules.pop("my_module", None)
    m = tmp_path / "m.json"
    m.write_text("{}")
    for bad, msg in [("nothere.py:build", "not found"), (f"{tmp_path / 'my_module.py'}:nope", "cannot import")]:
        rc = main(["evaluate", "--model", bad, "--dataset", str(m), "--data-root", str(tmp_path),
                   "--out", str(tmp_path / "s")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and "Traceback" not in err


def test_threads_and_names_are_checked(tmp_path, capsys):
    m = tmp_path / "m.json"
    m.write_text("{}")
    base = ["evaluate", "--dataset", str(m), "--data-root", str(tmp_path), "--out", str(tmp_path / "s")]
    assert main([*base, "--model", "cifar10/resnet20", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert main([*base, "--model", "cifar10/resnet20", "--model", "cifar10/resnet32", "--name", "a"]) == 2
    assert "one display name per --model" in capsys.readouterr().err


def test_near_duplicates_default_is_the_papers_protocol(tmp_path, pool, capsys, monkeypatch):
    from generalization.cli import build_parser
    from generalization.sampler import near_duplicates as nd

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    assert nd.default_metrics() == ["l2", "dssim"]
    assert nd.default_metrics(cnn_weights="random") == ["l2", "dssim", "cnn"]
    ckpt = tmp_path / "empty" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "resnet18-f37072fd.pth").write_bytes(b"")  # torchvision's DEFAULT resnet18 file name
    assert nd.default_metrics() == ["l2", "dssim", "cnn"]
    sub = build_parser()._subparsers._group_actions[0].choices["near-duplicates"]
    assert "l2 and dssim" in " ".join(sub.format_help().split())
    orig, cand = _tables(tmp_path, pool)
    (ckpt / "resnet18-f37072fd.pth").unlink()
    assert main(["near-duplicates", "--original", str(orig), "--candidates", str(cand), "--image-root", str(pool),
                 "--out", str(tmp_path / "nd")]) == 0
    assert json.loads((tmp_path / "nd" / "summary.json").read_text())["params"]["metrics"] == ["l2", "dssim"]


def test_selection_frequency_from_votes_with_file_ids(tmp_path, pool, capsys):
    counts = np.zeros((36, 3), dtype=np.int64)
    labels = np.repeat(np.arange(3), 12)[np.random.default_rng(1).permutation(36)]
    counts[np.arange(36), labels] = 7
    counts[:, 0] += 3
    np.save(tmp_path / "counts.npy", counts)
    np.save(tmp_path / "labels.npy", labels)
    out = tmp_path / "sf.csv"
    assert main(["selection-frequency", "--counts", str(tmp_path / "counts.npy"), "--labels",
                 str(tmp_path / "labels.npy"), "--classes", ",".join(CLASSES), "--image-folder", str(pool),
                 "--rows", "30:", "--out", str(out)]) == 0
    t = pd.read_csv(out)
    assert len(t) == 6
    for r, row in zip(range(30, 36), t.itertuples(), strict=True):
        c = labels[r]
        k = int((labels[:r] == c).sum())  # the k-th image of its class in row order
        assert row.image_id == f"{CLASSES[c]}/{k:04d}.png" and row._2 == CLASSES[c]
        assert row.selection_frequency == pytest.approx(counts[r, c] / counts[r].sum())
    assert main(["selection-frequency", "--counts", str(tmp_path / "counts.npy"), "--labels",
                 str(tmp_path / "labels.npy"), "--rows", "5", "--out", str(out)]) == 2
    assert "START:STOP" in capsys.readouterr().err


def test_image_arrays_with_labels_are_evaluated(tmp_path):
    """The documented way (docs/evaluator.md) to evaluate .npy images + labels."""
    from generalization.evaluator.datasets import array_dataset
    from generalization.evaluator.models import model_spec
    from generalization.evaluator.runner import evaluate

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 10)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    (tmp_path / "tiny_arr.py").write_text(MODEL_PY)
    ds = array_dataset(tmp_path / "x.npy", tmp_path / "y.npy", name="my-arrays", classes=LABEL_SPACE)
    table = evaluate([model_spec(f"{tmp_path / 'tiny_arr.py'}:build")], [ds], out=tmp_path / "s", device="cpu",
                     progress=False, log=lambda *a: None)
    assert table["n"].tolist() == [10]
    with pytest.raises(DataError, match="labels"):
        np.save(tmp_path / "bad.npy", labels[:5])
        array_dataset(tmp_path / "x.npy", tmp_path / "bad.npy", name="bad", classes=CLASSES)


def test_notebooks_extra_installs_jupyter():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith(("jupyterlab", "notebook")) for d in extras["notebooks"])
    assert any(d.startswith("nbconvert") for d in extras["notebooks"])
    assert '.[notebooks]' in (root / "README.md").read_text()


def test_reproduce_says_what_it_rebuilt_from(tmp_path, capsys):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "r"
    out.mkdir()
    acc = pd.read_csv(root / "results" / "accuracies.csv", keep_default_na=False)
    acc[acc["test_set"].isin(["cifar10-test", "cifar10.1-v6"])].to_csv(out / "accuracies.csv", index=False)
    assert main(["reproduce", "--out", str(out), "--n-bootstrap", "10"]) == 0
    said = capsys.readouterr().out
    assert f"rebuilt from {out / 'accuracies.csv'}" in said
