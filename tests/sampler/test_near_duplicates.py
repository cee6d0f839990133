"""Near-duplicate detection: exact kNN, SSIM against scikit-image, the component rule, the CLI, and the
acceptance run on real CIFAR-10 test images against their JPEG-75 copies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from generalization import constants
from generalization.cli import main
from generalization.files import DataError
from generalization.sampler import near_duplicates as nd

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ------------------------------------------------------------------------------------------ helpers


def _smooth_images(rng: np.random.Generator, n: int, size: int = 32) -> np.ndarray:
    """Random but image-like (smooth) uint8 pictures: upsampled 4x4 noise plus a little texture."""
    low = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.uint8)
    out = np.stack(
        [np.asarray(Image.fromarray(x).resize((size, size), Image.Resampling.BICUBIC)) for x in low]
    )
    return np.clip(out.astype(int) + rng.integers(-8, 9, out.shape), 0, 255).astype(np.uint8)


def _cifar_official_paths(labels: np.ndarray) -> list[str]:
    """Relative JPEG path of every official test row: the k-th image of class c is <c>/<k:04d>.jpg."""
    seen = np.zeros(10, dtype=int)
    paths = []
    for c in labels.astype(int):
        paths.append(f"{CIFAR10_CLASSES[c]}/{seen[c]:04d}.jpg")
        seen[c] += 1
    return paths


# ---------------------------------------------------------------------------------------------- kNN


def _brute_knn(q: np.ndarray, b: np.ndarray, k: int, exclude_self: bool = False):
    d = ((q[:, None, :].astype(np.int64) - b[None, :, :].astype(np.int64)) ** 2).sum(-1)
    if exclude_self:
        np.fill_diagonal(d, np.iinfo(np.int64).max)
    order = np.lexsort((np.broadcast_to(np.arange(len(b)), d.shape), d), axis=1)[:, :k]
    return np.take_along_axis(d, order, 1), order


def test_knn_exact_with_ties_and_chunks():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (70, 48), dtype=np.uint8)
    base[40] = base[3]  # exact duplicates make distance ties
    base[41] = base[3]
    queries = np.concatenate([base[:5], rng.integers(0, 256, (20, 48), dtype=np.uint8)])
    for qc, bc in [(7, 16), (4096, 4096)]:
        d, i = nd.knn(queries, base, 6, query_chunk=qc, base_chunk=bc)
        ed, ei = _brute_knn(queries, base, 6)
        np.testing.assert_array_equal(d, ed)
        np.testing.assert_array_equal(i, ei)
        d, i = nd.knn(base, base, 4, exclude_self=True, query_chunk=qc, base_chunk=bc)
        ed, ei = _brute_knn(base, base, 4, exclude_self=True)
        np.testing.assert_array_equal(d, ed)
        np.testing.assert_array_equal(i, ei)
    assert list(i[3][:2]) == [40, 41]  # ties go to the smaller index


def test_knn_float_features():
    rng = np.random.default_rng(2)
    q, b = rng.normal(size=(30, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)
    d, i = nd.knn(q, b, 3, base_chunk=16)
    full = ((q[:, None].astype(np.float64) - b[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(i, np.argsort(full, 1)[:, :3])
    np.testing.assert_allclose(d, np.sort(full, 1)[:, :3], rtol=1e-6)


# --------------------------------------------------------------------------------------------- SSIM


@pytest.mark.parametrize("shape", [(32, 32), (20, 27)])
def test_ssim_equals_scikit_image(shape):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a = _smooth_images(rng, 12, 32)[:, : shape[0], : shape[1]]
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    b[:4] = _smooth_images(rng, 4, 32)[:, : shape[0], : shape[1]]  # unrelated pairs too
    b[4] = a[4]
    got = nd.ssim_pairs(np.ascontiguousarray(a), np.ascontiguousarray(b), batch=5)
    want = [structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert nd.dssim_pairs(a[4:5], b[4:5])[0] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------- decisions


def test_component_rule():
    # 6 candidates, 2 originals. Links (l2 <= 10): c1-o0, c2-c1, c3-c4, c5-c4; c0 unlinked.
    rows = []

    def add(c, pool, n, d, rank=1, metric="l2"):
        rows.append(
            dict(
                candidate_index=c,
                candidate_id=f"c{c}",
                pool=pool,
                metric=metric,
                rank=rank,
                neighbor_index=n,
                neighbor_id=f"{'o' if pool == 'original' else 'c'}{n}",
                distance=d,
            )
        )

    for c in range(6):
        add(c, "original", 0 if c != 0 else 1, {1: 5.0}.get(c, 50.0 + c))
    add(0, "candidate", 3, 99.0)
    add(1, "candidate", 2, 4.0)
    add(2, "candidate", 1, 4.0)
    add(3, "candidate", 4, 1.0)
    add(4, "candidate", 3, 1.0)
    add(5, "candidate", 4, 7.0)
    add(5, "candidate", 2, 3.0, metric="dssim")  # a metric without threshold never links
    nb = pd.DataFrame(rows)
    dec, links = nd.decide(nb, [f"c{i}" for i in range(6)], ["o0", "o1"], {"l2": 10.0, "dssim": None})
    got = {r.candidate_id: (r.decision, r.reason, r.duplicate_of) for r in dec.itertuples()}
    assert got == {
        "c0": ("kept", "unique", ""),
        "c1": ("excluded", "duplicate_of_original", "o0"),
        "c2": ("excluded", "connected_to_original", "c1"),
        "c3": ("kept", "survivor", ""),
        "c4": ("excluded", "duplicate_of_candidate", "c3"),
        "c5": ("excluded", "duplicate_of_candidate", "c3"),
    }
    # candidate pairs appear once, smaller index first
    cc = links[links["pool"] == "candidate"][["candidate_index", "neighbor_index"]].values.tolist()
    assert cc == [[1, 2], [3, 4], [4, 5]]
    assert dec.loc[3, "component_size"] == 3 and dec.loc[1, "component_size"] == 3  # c1, c2, o0


def test_thresholds_defaults_and_errors():
    thr = nd.resolve_thresholds(["l2", "dssim", "cnn"], None, (32, 32, 3))
    assert thr == {"l2": nd.DEFAULT_L2_PER_VALUE * 3072, "dssim": 0.12, "cnn": None}
    with pytest.raises(DataError, match="not selected"):
        nd.resolve_thresholds(["l2"], {"cnn": 0.1}, (32, 32, 3))
    with pytest.raises(DataError, match=">= 0"):
        nd.resolve_thresholds(["l2"], {"l2": -1}, (32, 32, 3))
    with pytest.raises(DataError, match="unknown metric"):
        nd.detect_near_duplicates(
            nd.ImageSet(["a"], np.zeros((1, 8, 8, 3), np.uint8)),
            nd.ImageSet(["b"], np.zeros((1, 8, 8, 3), np.uint8)),
            metrics=["l1"],
        )


def test_single_candidate_no_links():
    rng = np.random.default_rng(7)
    imgs = _smooth_images(rng, 3)
    res = nd.detect_near_duplicates(
        nd.ImageSet(["a"], imgs[:1]),
        nd.ImageSet(["o1", "o2"], imgs[1:]),
        metrics=["l2", "dssim"],
        k=5,
        shortlist=2,
    )
    assert res.decisions[["decision", "reason"]].values.tolist() == [["kept", "unique"]]
    assert res.links.empty and res.summary()["kept"] == 1
    assert set(res.neighbors["pool"]) == {"original"} and len(res.neighbors) == 4  # 2 originals x 2 metrics


# ------------------------------------------------------------------------------------ inputs and CLI


def test_bad_inputs(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"bad\.npy.*\(N, H, W, 3\)"):
        nd.load_image_set(bad)
    np.save(bad, np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(DataError, match="uint8"):
        nd.load_image_set(bad)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(folder / "b.png")
    with pytest.raises(DataError, match=r"b\.png.*--size"):
        nd.load_image_set(folder)
    assert nd.load_image_set(folder, size=16).images.shape == (2, 16, 16, 3)
    (folder / "c.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"c\.jpg: cannot decode"):
        nd.load_image_set(folder, size=16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        nd.load_image_set(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        nd.load_image_set(tmp_path / "nothing.npy")


def _write_pool(tmp_path: Path) -> Path:
    """orig.npy (40 images) and cand/: JPEG copies of originals 0..4, a near-identical pair (u0, u1) and 10
    unrelated images; returns the candidate folder."""
    rng = np.random.default_rng(4)
    originals = _smooth_images(rng, 40)
    np.save(tmp_path / "orig.npy", originals)
    cand = tmp_path / "cand"
    (cand / "x").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(originals[i]).save(cand / "x" / f"copy{i}.jpg", quality=75)
    pair = _smooth_images(rng, 1)[0]
    Image.fromarray(pair).save(cand / "u0.png")
    Image.fromarray(np.clip(pair.astype(int) + 2, 0, 255).astype(np.uint8)).save(cand / "u1.png")
    for i, img in enumerate(_smooth_images(rng, 10)):
        Image.fromarray(img).save(cand / f"v{i:02d}.png")
    return cand


def test_cli_end_to_end(tmp_path, capsys):
    cand = _write_pool(tmp_path)
    out = tmp_path / "out"
    rc = main(
        [
            "near-duplicates",
            "--original",
            str(tmp_path / "orig.npy"),
            "--candidates",
            str(cand),
            "--out",
            str(out),
            "--metric",
            "l2",
            "dssim",
            "cnn",
            "--cnn-weights",
            "random",
            "--threshold",
            "cnn=none",
            "--k",
            "3",
            "--shortlist",
            "4",
        ]
    )
    assert rc == 0
    assert "17 candidates" in capsys.readouterr().out
    dec = pd.read_csv(out / "decisions.csv", keep_default_na=False).set_index("candidate_id")
    for i in range(5):
        assert dec.loc[f"x/copy{i}.jpg", "reason"] == "duplicate_of_original"
        assert dec.loc[f"x/copy{i}.jpg", "duplicate_of"] == str(i)
    assert dec.loc["u0.png", "reason"] == "survivor"  # first in sorted order survives
    assert (dec.loc["u1.png", "reason"], dec.loc["u1.png", "duplicate_of"]) == (
        "duplicate_of_candidate",
        "u0.png",
    )
    assert (dec.loc[[f"v{i:02d}.png" for i in range(10)], "reason"] == "unique").all()
    assert {"dist_original_cnn", "dist_candidate_dssim"} <= set(dec.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 11 and summary["thresholds"]["cnn"] is None
    ex = pd.read_csv(out / "exclusions.csv", keep_default_na=False)
    assert sorted(ex["image_id"]) == sorted([f"x/copy{i}.jpg" for i in range(5)] + ["u1.png"])
    assert set(ex["reason"]) == {"near_duplicate"}
    page = (out / "review.html").read_text()
    assert "data:image/png;base64," in page
    assert "src='http" not in page and 'src="http' not in page  # self-contained
    assert (out / "review.png").stat().st_size > 10_000
    nb = pd.read_csv(out / "neighbors.csv")
    assert set(nb["metric"]) == {"l2", "dssim", "cnn"} and nb["rank"].max() == 3

    rc = main(
        [
            "near-duplicates",
            "--original",
            str(tmp_path / "orig.npy"),
            "--candidates",
            str(cand),
            "--out",
            str(out),
            "--threshold",
            "l2:5",
        ]
    )
    assert rc == 2 and "METRIC=NUMBER" in capsys.readouterr().err


def test_python_default_metrics_are_the_clis(tmp_path, capsys, monkeypatch):
    """Without ``metrics`` the Python API runs the paper's protocol, exactly what the CLI runs without --metric
    (here l2 + dssim: no CNN weights at hand; that cnn joins when they are is tested with default_metrics in
    tests/test_new_test_set_chain.py)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    cand = _write_pool(tmp_path)
    expected = ["l2", "dssim"]
    cands, origs = nd.load_image_set(cand), nd.load_image_set(tmp_path / "orig.npy")
    res = nd.detect_near_duplicates(cands, origs, k=3, shortlist=4)
    assert res.params["metrics"] == expected
    assert sorted(set(res.neighbors["metric"])) == sorted(expected)
    nb = nd.find_neighbors(cands, origs, k=3, shortlist=4)
    assert sorted(set(nb["metric"])) == sorted(expected)
    out = tmp_path / "out"
    assert main(["near-duplicates", "--original", str(tmp_path / "orig.npy"), "--candidates", str(cand),
                 "--out", str(out), "--k", "3", "--shortlist", "4"]) == 0
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["params"]["metrics"] == expected
    cli = pd.read_csv(out / "decisions.csv", dtype=str, keep_default_na=False)
    cols = ["candidate_id", "decision", "reason", "duplicate_of"]
    pd.testing.assert_frame_equal(cli[cols], res.decisions[cols].astype(str).replace("None", ""))
    # the default catches every JPEG copy; pixel L2 alone stays one argument away
    assert set(res.decisions.loc[res.decisions["reason"] == "duplicate_of_original", "candidate_id"]) == {
        f"x/copy{i}.jpg" for i in range(5)}
    assert nd.detect_near_duplicates(cands, origs, metrics=["l2"], k=3).params["metrics"] == ["l2"]


def test_cnn_weights_enum_path_offline(tmp_path, monkeypatch):
    """The real weights path (torchvision's enum + load_state_dict_from_url) with the file already in
    $TORCH_HOME/hub/checkpoints, as a download would leave it; the weights here are locally made."""
    import torch
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    w = torchvision.models.ResNet18_Weights.DEFAULT
    ckpt = tmp_path / "hub" / "checkpoints" / Path(w.url).name
    ckpt.parent.mkdir(parents=True)
    torch.manual_seed(5)
    model = torchvision.models.resnet18()
    torch.save(model.state_dict(), ckpt)
    imgs = _smooth_images(np.random.default_rng(6), 3)
    feats = nd.cnn_features(imgs, weights="DEFAULT", input_size=32)
    model.fc = torch.nn.Identity()
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255 - torch.tensor(constants.IMAGENET_MEAN).view(
        1, 3, 1, 1
    )
    x = x / torch.tensor(constants.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.eval()(x), dim=1).numpy()
    np.testing.assert_allclose(feats, want, atol=1e-5)
    with pytest.raises(DataError, match="unknown weights"):
        nd.cnn_features(imgs, weights="NOPE")


# ----------------------------------------------------------------------------- real data acceptance


@pytest.fixture(scope="module")
def cifar(shared_data):
    labels = np.load(shared_data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")
    jpeg_root = shared_data / "cifar10-test-jpeg75" / "test"
    first = shared_data / "cifar10-test-first1000" / "test_data_first1000.npy"
    if not jpeg_root.is_dir() or not first.is_file():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"missing {jpeg_root} or {first}")
    cand = nd.load_image_set(jpeg_root)
    orig = nd.load_image_set(first)
    official = _cifar_official_paths(labels)
    # Expected mapping, from the labels alone: candidate position -> official row (source original if < 1000)
    pos = {c: i for i, c in enumerate(cand.ids)}
    row_of_candidate = np.empty(len(cand), dtype=int)
    for row, rel in enumerate(official):
        row_of_candidate[pos[rel]] = row
    return cand, orig, row_of_candidate


@pytest.fixture(scope="module")
def cifar_result(cifar):
    cand, orig, _ = cifar
    return nd.detect_near_duplicates(cand, orig, metrics=["l2", "dssim"], k=3, shortlist=3)


def _separation(dist: np.ndarray, is_dup: np.ndarray) -> str:
    d, o = dist[is_dup], dist[~is_dup]
    return (
        f"duplicates median {np.median(d):.4g} max {d.max():.4g}; non-duplicates min {o.min():.4g} "
        f"1st pct {np.percentile(o, 1):.4g} median {np.median(o):.4g}"
    )


@pytest.mark.slow
def test_cifar10_jpeg_copies_nearest_original_is_source(cifar, cifar_result):
    cand, orig, row_of = cifar
    is_dup = row_of < 1000
    # Independent check with numpy (float64 matmul is exact on uint8): the JPEG copies of rows 0..999.
    q = cand.images[is_dup].reshape(int(is_dup.sum()), -1).astype(np.float64)
    b = orig.images.reshape(len(orig), -1).astype(np.float64)
    d = (q**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * q @ b.T
    np.testing.assert_array_equal(d.argmin(1), row_of[is_dup])

    nb = cifar_result.neighbors
    for metric in ("l2", "dssim"):
        first = nb[(nb["metric"] == metric) & (nb["pool"] == "original") & (nb["rank"] == 1)]
        first = first.set_index("candidate_index").reindex(range(len(cand)))
        recall = float((first["neighbor_index"].to_numpy()[is_dup] == row_of[is_dup]).mean())
        print(f"{metric}: recall@1 {recall:.4f}; {_separation(first['distance'].to_numpy(), is_dup)}")
        assert recall == 1.0
    np.testing.assert_array_equal(
        nb[(nb["metric"] == "l2") & (nb["pool"] == "original") & (nb["rank"] == 1)]
        .set_index("candidate_index")
        .loc[np.flatnonzero(is_dup), "distance"]
        .to_numpy(),
        d.min(1),
    )


@pytest.mark.slow
def test_cifar10_pipeline_excludes_copies_keeps_the_rest(cifar, cifar_result):
    from skimage.metrics import structural_similarity

    cand, orig, row_of = cifar
    dec = cifar_result.decisions
    is_dup = row_of < 1000
    copies = dec[is_dup]
    assert (copies["decision"] == "excluded").all()
    assert (copies["duplicate_of"].astype(int).to_numpy() == row_of[is_dup]).all()
    others = dec[~is_dup]
    extra = others[others["decision"] == "excluded"]
    links = cifar_result.links
    print(f"{len(extra)} of {len(others)} other candidates excluded:")
    for r in extra.itertuples():
        print(f"  {r.candidate_id} (official row {row_of[r.candidate_index]}): {r.reason} {r.duplicate_of}")
    print("links among the other candidates and to originals:")
    pairs = links[
        ~np.isin(links["candidate_index"], np.flatnonzero(is_dup))
        | ((links["pool"] == "candidate") & ~np.isin(links["neighbor_index"], np.flatnonzero(is_dup)))
    ]
    print(pairs[["candidate_id", "pool", "neighbor_id", "metric", "distance"]].to_string())
    # Real near-duplicate pairs inside the CIFAR-10 test set exist, but only a handful.
    assert len(extra) <= 20
    # Every extra exclusion rests on a link whose DSSIM (recomputed with scikit-image) or L2 is small.
    for r in pairs[pairs["metric"] == "dssim"].itertuples():
        a = cand.images[r.candidate_index]
        b = (cand if r.pool == "candidate" else orig).images[r.neighbor_index]
        dssim = (1 - structural_similarity(a, b, channel_axis=-1, data_range=255)) / 2
        assert dssim == pytest.approx(r.distance, abs=1e-9) and dssim <= 0.12
    # One survivor per candidate-only component.
    comp = dec[dec["component_size"] > 1]
    for _, g in comp.groupby("component"):
        if g["reason"].isin(["duplicate_of_original", "connected_to_original"]).any():
            assert (g["decision"] == "excluded").all()
        else:
            assert (g["reason"] == "survivor").sum() == 1
            assert g.loc[g["reason"] == "survivor", "candidate_index"].iloc[0] == g["candidate_index"].min()
    assert (dec.loc[dec["component_size"] == 1, "decision"] == "kept").all()


@pytest.mark.slow
def test_cifar10_cnn_random_features_recall(cifar):
    """CNN distance with a seeded random-init ResNet-18 (no pretrained weights offline): recall@1 of the
    1,000 copies, and separation against 1,000 other candidates (a subset, to keep the test short)."""
    cand, orig, row_of = cifar
    is_dup = row_of < 1000
    sel = np.concatenate([np.flatnonzero(is_dup), np.flatnonzero(~is_dup)[::9]])
    fc = nd.cnn_features(cand.images[sel], weights="random", seed=0)
    fo = nd.cnn_features(orig.images, weights="random", seed=0)
    d, i = nd.knn(fc, fo, 1)
    dup = is_dup[sel]
    recall = float((i[dup, 0] == row_of[sel][dup]).mean())
    print(f"cnn (random resnet18): recall@1 {recall:.4f}; {_separation(d[:, 0], dup)}")
    assert recall >= 0.99
