"""Sampling strategies: binning, largest remainder, MatchedFrequency / Threshold / TopImages on hand-made and
simulated pools, determinism across processes, and the CIFAR-10.1 v6 re-derivation from the release inputs."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from generalization.cli import main
from generalization.files import DataError
from generalization.sampler import strategies as sm

HERE = Path(__file__).resolve()


# ------------------------------------------------------------------------------------ simulated pool


def simulate_pool(seed: int = 0, n_classes: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A pool that looks like real annotations: per class a log-normal number of candidates (median 60,
    from 3 to 400), 70 % of them true class members (true frequency ~ Beta(8, 2)) and 30 % not (~ Beta(1.5,
    3)), each seen by 10 + Poisson(2) workers; the original set has 50 images per class (~ Beta(6, 1.5)).
    Image ids are random hex strings (hash-randomised in Python sets)."""
    rng = np.random.default_rng(seed)
    rows, orig = [], []
    for c in range(n_classes):
        cls = f"n{c:08d}"
        size = int(np.clip(rng.lognormal(np.log(60), 0.8), 3, 400))
        good = rng.random(size) < 0.7
        p = np.where(good, rng.beta(8, 2, size), rng.beta(1.5, 3, size))
        n = 10 + rng.poisson(2, size)
        n[rng.random(size) < 0.03] = 5  # a few under-annotated images
        k = rng.binomial(n, p)
        ids = [f"{x:016x}" for x in rng.integers(0, 2**63, size).tolist()]
        rows += [(ids[i], cls, k[i] / n[i], int(n[i])) for i in range(size)]
        pv = rng.beta(6, 1.5, 50)
        nv = 10 + rng.poisson(1, 50)
        kv = rng.binomial(nv, pv)
        orig += [(f"val_{c}_{i}", cls, kv[i] / nv[i], int(nv[i])) for i in range(50)]
    cols = ["image_id", "class", "selection_frequency", "num_annotations"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(orig, columns=cols)


def _bins_numpy(f: np.ndarray) -> np.ndarray:
    # independent of the code under test: count the edges each value has reached
    f = np.asarray(f, dtype=np.float64)
    return sum((f >= e).astype(np.int64) for e in (0.2, 0.4, 0.6, 0.8))


def _largest_remainder_fractions(counts, size):
    total = sum(counts)
    quotas = [Fraction(c * size, total) for c in counts]
    out = [int(q) for q in quotas]
    rems = sorted(range(len(counts)), key=lambda b: (quotas[b] - int(quotas[b]), b), reverse=True)
    for b in rems[: size - sum(out)]:
        out[b] += 1
    return out


@pytest.fixture(scope="module")
def pool():
    return simulate_pool()


# ------------------------------------------------------------------------------------------- helpers


def test_histogram_bins_edges_go_up():
    f = [0.0, 0.1999, 0.2, 0.3999, 0.4, 0.5, 0.6, 0.7999, 0.8, 1.0, 2 / 10, 6 / 10, 4 / 5, 3 / 5]
    assert sm.histogram_bins(f).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 1, 3, 4, 3]
    assert sm.histogram_bins(f).tolist() == _bins_numpy(np.array(f)).tolist()
    with pytest.raises(DataError):
        sm.histogram_bins([0.5, float("nan")])


def test_largest_remainder_examples_and_ties_to_higher_bin():
    assert sm.largest_remainder([5, 3, 2], 7).tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4
    assert sm.largest_remainder([1, 1, 1, 1, 1], 3).tolist() == [0, 0, 1, 1, 1]  # all tie: higher bins
    assert sm.largest_remainder([0, 0, 0, 0, 50], 10).tolist() == [0, 0, 0, 0, 10]
    rng = random.Random(5)
    for _ in range(300):
        counts = [rng.randrange(0, 30) for _ in range(5)]
        if sum(counts) == 0:
            continue
        size = rng.randrange(0, 40)
        got = sm.largest_remainder(counts, size).tolist()
        assert got == _largest_remainder_fractions(counts, size)
        assert sum(got) == size


def test_target_histograms_match_numpy(pool):
    _, orig = pool
    t = sm.target_histograms(orig, 10, min_annotations=11)
    o = orig[orig["num_annotations"] >= 11]
    for cls in ["n00000000", "n00000500", "n00000999"]:
        f = o.loc[o["class"] == cls, "selection_frequency"].to_numpy()
        counts = np.bincount(_bins_numpy(f), minlength=5).tolist()
        assert t.loc[cls].tolist() == _largest_remainder_fractions(counts, 10)
    assert (t.sum(axis=1) == 10).all() and len(t) == 1000


# ------------------------------------------------------------------------------------ small examples


def _cands(rows):
    return pd.DataFrame(rows, columns=["image_id", "class", "selection_frequency", "num_annotations"])


def test_matched_frequency_draws_each_bin_and_upward_only_from_higher_bins():
    rows = [(f"a{i}", "A", f, 10) for i, f in enumerate([0.1, 0.1, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.95])]
    cand = _cands(rows)
    targets = pd.DataFrame([[1, 0, 2, 2, 2]], index=pd.Index(["A"], name="class"), columns=range(5))
    r = sm.matched_frequency(cand, targets, seed=3)
    # bin 3 (0.6-0.8) has no candidates: a shortfall of 2, nothing taken from other bins
    assert r.shortfalls.to_dict("records") == [
        {"class": "A", "bin": 3, "target": 2, "achieved": 0, "missing": 2}
    ]
    assert not r.is_valid and r.manifest["shortfalls"] == {"A": 2}
    assert r.selected.groupby("bin").size().to_dict() == {0: 1, 2: 2, 4: 2}
    up = sm.matched_frequency(cand, targets, seed=3, upward_sampling=True)
    assert up.is_valid and len(up.shortfalls) == 0
    ups = up.selected[up.selected["upward"]]
    assert len(ups) == 2 and (ups["selection_frequency"] >= 0.8).all()  # from bin 4, never from bin 2
    assert len(up.selected) == 7
    # a low bin is never filled from a lower one
    t2 = pd.DataFrame([[0, 3, 0, 0, 0]], index=pd.Index(["A"], name="class"), columns=range(5))
    r2 = sm.matched_frequency(cand, t2, seed=3, upward_sampling=True)
    assert (r2.selected["selection_frequency"] >= 0.4).all() and r2.is_valid


def test_matched_frequency_carry_over_and_exclusions():
    rows = [(f"a{i}", "A", 0.9, 10) for i in range(10)] + [("a10", "A", 0.9, 3)]
    cand = _cands(rows)
    targets = pd.DataFrame([[0, 0, 0, 0, 4]], index=pd.Index(["A"], name="class"), columns=range(5))
    excl = pd.DataFrame(
        {"image_id": ["a1", "a2", "a3"], "reason": ["near_duplicate", "not_reviewed", "blacklisted"]}
    )
    prev = [("a1", "A"), ("a5", "A"), ("a7", "A"), ("gone", "A")]
    r = sm.matched_frequency(
        cand,
        targets,
        seed=0,
        carry_over=prev,
        exclusions=excl,
        blacklist=["a4"],
        min_annotations=10,
        shuffle=False,
    )
    ids = [i for i, _ in r.manifest["image_filenames"]]
    assert ids[:2] == ["a5", "a7"] and len(ids) == 4  # still-usable carried images first
    assert not set(ids) & {"a1", "a2", "a3", "a4", "a10"}
    reasons = dict(zip(r.exclusions["image_id"], r.exclusions["reason"], strict=True))
    assert reasons == {
        "a1": "near_duplicate",
        "a2": "not_reviewed",
        "a3": "blacklisted",
        "a4": "blacklisted",
        "a10": "too_few_annotations",
        "gone": "no_longer_candidate",
    }
    summary = r.exclusion_summary().set_index("class")
    assert summary.loc["A", "blacklisted"] == 2 and summary.loc["A", "near_duplicate"] == 1


def test_threshold_overrides_and_top_images_ties():
    rows = [
        ("x1", "A", 0.9, 10),
        ("x2", "A", 0.7, 10),
        ("x3", "A", 0.65, 10),
        ("x4", "A", 0.5, 10),
        ("y1", "B", 0.9, 12),
        ("y2", "B", 0.9, 10),
        ("y3", "B", 0.9, 12),
        ("y4", "B", 0.8, 30),
    ]
    cand = _cands(rows)
    r = sm.threshold(cand, 3, 0.7, seed=1, class_thresholds={"A": 0.6})
    got = r.selected.groupby("class")["image_id"].apply(sorted).to_dict()
    assert got == {"A": ["x1", "x2", "x3"], "B": ["y1", "y2", "y3"]} or got["B"] != []
    assert set(got["A"]) == {"x1", "x2", "x3"} and r.is_valid
    r = sm.threshold(cand, 4, 0.7, seed=1)
    assert r.shortfalls.set_index("class")["missing"].to_dict() == {"A": 2}
    assert r.manifest["is_valid"] is False
    t = sm.top_images(cand, 3, seed=None, carry_over=[("y2", "B")])
    order = [i for i, c in t.manifest["image_filenames"] if c == "B"]
    assert order == ["y1", "y3", "y2"]  # 0.9 with 12 annotations (by id), then 0.9 with 10, y4 (0.8) out
    t2 = sm.top_images(cand.assign(num_annotations=10), 2, seed=None, carry_over=[("y3", "B")])
    assert [i for i, c in t2.manifest["image_filenames"] if c == "B"] == ["y3", "y1"]  # carry-over beats id


def test_bad_inputs_raise():
    with pytest.raises(DataError, match="duplicate"):
        sm.screen_candidates(_cands([("a", "A", 0.5, 1), ("a", "A", 0.6, 1)]))
    with pytest.raises(DataError, match="selection_frequency"):
        sm.screen_candidates(pd.DataFrame({"image_id": ["a"], "class": ["A"]}))


# --------------------------------------------------------------------------- simulated acceptance


def test_simulated_pool_targets_hit_exactly_and_every_shortfall_reported(pool, tmp_path):
    cand, orig = pool
    targets = sm.target_histograms(orig, 10, min_annotations=10)
    usable = cand[cand["num_annotations"] >= 10]
    avail = pd.crosstab(usable["class"], _bins_numpy(usable["selection_frequency"].to_numpy())).reindex(
        index=targets.index, columns=range(5), fill_value=0
    )
    want_missing = (targets - avail).clip(lower=0)

    r = sm.matched_frequency(cand, targets, seed=11, min_annotations=10)
    got = pd.crosstab(r.selected["class"], _bins_numpy(r.selected["selection_frequency"].to_numpy()))
    got = got.reindex(index=targets.index, columns=range(5), fill_value=0)
    assert (got == np.minimum(targets, avail)).all().all()  # exact wherever candidates suffice
    short = r.shortfalls.set_index(["class", "bin"])["missing"]
    expected = want_missing.stack()
    expected = expected[expected > 0]
    assert short.sort_index().to_dict() == {
        (c, int(b)): int(m) for (c, b), m in expected.sort_index().items()
    }
    assert 0 < len(short) < 200 and r.is_valid is False
    assert not r.selected.duplicated(["image_id", "class"]).any()

    up = sm.matched_frequency(cand, targets, seed=11, min_annotations=10, upward_sampling=True)
    sizes = up.selected.groupby("class").size().reindex(targets.index, fill_value=0)
    # a class can reach its size iff, walking bins from high to low, no bin lacks candidates from itself
    # or above: for every bin b, the targets of bins >= b never exceed the candidates of bins >= b
    tail_t = targets.iloc[:, ::-1].cumsum(axis=1)
    tail_a = avail.iloc[:, ::-1].cumsum(axis=1)
    reachable = (tail_t <= tail_a).all(axis=1)
    assert (sizes[reachable] == 10).all()
    assert set(up.manifest["shortfalls"]) == set(targets.index[~reachable])
    assert (up.selected.loc[up.selected["upward"], "bin"].notna()).all()

    th = sm.threshold(cand, 10, 0.7, seed=11, min_annotations=10)
    elig = usable[usable["selection_frequency"] >= 0.7].groupby("class").size()
    n_sel = th.selected.groupby("class").size()
    assert (n_sel == np.minimum(elig.reindex(n_sel.index), 10)).all()
    assert (th.selected["selection_frequency"] >= 0.7).all()
    assert th.manifest["shortfalls"] == {c: 10 - int(v) for c, v in elig.items() if v < 10}

    top = sm.top_images(cand, 10, seed=11, min_annotations=10)
    for cls in ["n00000003", "n00000444"]:
        u = usable[usable["class"] == cls]
        idx = np.lexsort(
            (u["image_id"].to_numpy(), -u["num_annotations"].to_numpy(), -u["selection_frequency"].to_numpy())
        )
        assert sorted(top.selected.loc[top.selected["class"] == cls, "image_id"]) == sorted(
            u["image_id"].to_numpy()[idx][:10]
        )

    written = sm.write_outputs(up, tmp_path / "mf")
    assert {p.name for p in written} == {
        "manifest.json",
        "exclusions.csv",
        "excluded_images.csv",
        "shortfalls.csv",
        "audit.png",
    }
    m = json.loads((tmp_path / "mf" / "manifest.json").read_text())
    assert m["sampling_function"] == "matched_frequency" and m["seed"] == 11
    assert m["histogram_bins"] == [0.2, 0.4, 0.6, 0.8] and len(m["image_filenames"]) == m["num_images"]
    excl = pd.read_csv(tmp_path / "mf" / "exclusions.csv")
    assert excl["too_few_annotations"].sum() == int((cand["num_annotations"] < 10).sum())


_SUBPROCESS = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("t", sys.argv[1])
t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)
from generalization.sampler import strategies as sm
cand, orig = t.simulate_pool(n_classes=int(sys.argv[3]))
targets = sm.target_histograms(orig, 10, min_annotations=10)
out = sys.argv[2]
sm.write_outputs(sm.matched_frequency(cand, targets, seed=7, min_annotations=10, upward_sampling=True,
                                      carry_over=[(i, c) for i, c in zip(cand.image_id[::50], cand["class"][::50])]),
                 out + "/mf", figure=False)
sm.write_outputs(sm.threshold(cand, 10, 0.7, seed=7, min_annotations=10), out + "/th", figure=False)
sm.write_outputs(sm.top_images(cand, 10, seed=7, min_annotations=10), out + "/top", figure=False)
"""


def test_manifests_byte_identical_across_hash_seeds(tmp_path):
    procs = []
    for hs in ("1", "4242"):
        out = tmp_path / hs
        out.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": hs}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _SUBPROCESS, str(HERE), str(out), "1000"],
                env=env,
                stderr=subprocess.PIPE,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    for name in ("mf", "th", "top"):
        for f in ("manifest.json", "excluded_images.csv", "shortfalls.csv"):
            a = (tmp_path / "1" / name / f).read_bytes()
            assert a == (tmp_path / "4242" / name / f).read_bytes(), (name, f)
    m = json.loads((tmp_path / "1" / "mf" / "manifest.json").read_text())
    assert m["allow_upward_sampling"] is True and len(m["image_filenames"]) > 9800


# --------------------------------------------------------------------------------- CIFAR-10.1 v6


def _v6_keywords_with_order_sensitive_pools(d: Path) -> list[tuple[str, str]]:
    """Independently of the code under test: keywords that draw from 'pool minus start' where a set's order
    differs from the pool's order on this interpreter."""
    L = lambda f: json.loads((d / f).read_text())  # noqa: E731
    bl = set(L("blacklist_v6.json"))
    pools, counts, v4 = (
        L("tinyimage_good_indices_subselected_v6.json"),
        L("keyword_counts_v6.json"),
        L("cifar10.1_v4_ti_indices_per_keyword.json"),
    )
    cruiser = L("cruiser_good_indices.json")
    out = []
    for cls, kws in counts.items():
        for kw, n in kws.items():
            start = [] if (cls, kw) == ("ship", "cruiser") else v4.get(kw, [])
            pool = cruiser[cls] if kw == "cruiser" else [x for x in pools[kw] if x not in bl]
            if (
                start
                and n > len(start)
                and list(set(pool) - set(start)) != [x for x in pool if x not in set(start)]
            ):
                out.append((cls, kw))
    return out


def _positions(d: Path, keys: list[tuple[str, str]]) -> list[int]:
    counts = json.loads((d / "keyword_counts_v6.json").read_text())
    pos, out = 0, []
    for cls, kws in counts.items():
        for kw, n in kws.items():
            if (cls, kw) in keys:
                out.append(pos + n - 1)  # both keywords need one draw: the last position of the keyword
            pos += n
    return out


def test_cifar101_v6_rederivation(cifar101_release, tmp_path):
    d = cifar101_release / "other_data"
    released = json.loads((d / "cifar10.1_v6_ti_indices.json").read_text())
    sensitive = _v6_keywords_with_order_sensitive_pools(d)
    assert sensitive == [("ship", "passenger_ship"), ("ship", "boat")]
    pos = _positions(d, sensitive)
    assert pos == [1616, 1630]

    kw = sm.cifar101_keyword_inputs(d)
    assert kw.pop("released") == released
    compat = sm.keyword_counts(**kw, seed=670725112, compat_set_order=True)
    ids = [i for i, _ in compat.manifest["image_filenames"]]
    n, diff = sm.count_matches(ids, released)
    assert n >= 1999 and diff == [1616]
    # the one left: passenger_ship's single draw. The released id is a legal draw (in pool minus start) and
    # all later positions agree, so the generator state was the same: only the set's order differed
    start = json.loads((d / "cifar10.1_v4_ti_indices_per_keyword.json").read_text())["passenger_ship"]
    pool = [
        x
        for x in json.loads((d / "tinyimage_good_indices_subselected_v6.json").read_text())["passenger_ship"]
        if x not in set(json.loads((d / "blacklist_v6.json").read_text()))
    ]
    assert released[1616] in set(pool) - set(start) and ids[1616] in set(pool) - set(start)
    assert released[1600:1616] == start  # the v4 list kept whole, one id appended

    default = sm.keyword_counts(**kw, seed=670725112)
    ids = [i for i, _ in default.manifest["image_filenames"]]
    n, diff = sm.count_matches(ids, released)
    assert n == 1998 and diff == pos  # exactly the two keywords whose set order differs from pool order
    assert default.is_valid and len(ids) == 2000
    classes = [c for _, c in default.manifest["image_filenames"]]
    labels = np.load(cifar101_release / "datasets" / "cifar10.1_v6_labels.npy")
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert [names[i] for i in labels] == classes

    assert (
        main(
            [
                "sample",
                "keyword-counts",
                "--cifar101",
                str(d),
                "--seed",
                "670725112",
                "--compat-set-order",
                "--out",
                str(tmp_path / "kw"),
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "kw" / "manifest.json").read_text())
    assert m["compat_set_order"] is True and m["seed"] == 670725112


# --------------------------------------------------------------------------------------------- CLI


def test_cli_matched_frequency_threshold_top(tmp_path, pool, capsys):
    cand, orig = pool
    classes = sorted(set(cand["class"]))[:40]
    c = cand[cand["class"].isin(classes)]
    o = orig[orig["class"].isin(classes)]
    c.to_csv(tmp_path / "cand.csv", index=False)
    o.to_csv(tmp_path / "orig.csv", index=False)
    pd.DataFrame({"image_id": c["image_id"].iloc[:5], "reason": "near_duplicate"}).to_csv(
        tmp_path / "ex.csv", index=False
    )
    assert (
        main(
            [
                "sample",
                "matched-frequency",
                "--candidates",
                str(tmp_path / "cand.csv"),
                "--original",
                str(tmp_path / "orig.csv"),
                "--per-class",
                "10",
                "--seed",
                "1",
                "--upward-sampling",
                "--exclusions",
                str(tmp_path / "ex.csv"),
                "--min-annotations",
                "10",
                "--out",
                str(tmp_path / "mf"),
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "mf" / "manifest.json").read_text())
    assert m["target_size"] == 400 and not {i for i, _ in m["image_filenames"]} & set(c["image_id"].iloc[:5])
    assert (tmp_path / "mf" / "audit.png").stat().st_size > 10_000
    assert (
        main(
            [
                "sample",
                "threshold",
                "--candidates",
                str(tmp_path / "cand.csv"),
                "--per-class",
                "5",
                "--tau",
                "0.7",
                "--class-threshold",
                f"{classes[0]}=0.9",
                "--seed",
                "1",
                "--carry-over",
                str(tmp_path / "mf" / "manifest.json"),
                "--out",
                str(tmp_path / "th"),
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "th" / "manifest.json").read_text())
    assert m["class_thresholds"] == {classes[0]: 0.9} and m["starting_from"] == "manifest.json"
    assert (
        main(
            [
                "sample",
                "top-images",
                "--candidates",
                str(tmp_path / "cand.csv"),
                "--per-class",
                "5",
                "--out",
                str(tmp_path / "top"),
                "--no-figure",
            ]
        )
        == 0
    )
    (tmp_path / "bad.csv").write_text("image_id,class,selection_frequency\na,A,0.5\nb,A,high\n")
    assert (
        main(
            [
                "sample",
                "top-images",
                "--candidates",
                str(tmp_path / "bad.csv"),
                "--per-class",
                "1",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "line(s) [3]" in capsys.readouterr().err


def test_matched_frequency_on_cifar10h_with_shifted_targets(shared_data):
    """The use issue 9 needs: CIFAR-10 test images (integer ids and classes) with CIFAR-10H frequencies,
    resampled to a histogram other than their own."""
    from generalization.sampler.frequencies import selection_frequencies_from_counts

    counts = np.load(shared_data / "cifar10h" / "cifar10h-counts.npy", allow_pickle=False)
    labels = np.load(
        shared_data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy", allow_pickle=False
    ).astype(np.int64)
    cand = selection_frequencies_from_counts(counts, labels)
    shifted = [2, 3, 10, 25, 60]  # per class: more low-frequency images than CIFAR-10 has
    targets = pd.DataFrame([shifted] * 10, index=pd.Index(range(10), name="class"), columns=range(5))
    r = sm.matched_frequency(cand, targets, seed=0)
    f = counts[np.arange(10_000), labels] / counts.sum(axis=1)
    avail = np.zeros((10, 5), dtype=np.int64)
    np.add.at(avail, (labels, _bins_numpy(f)), 1)
    got = np.zeros((10, 5), dtype=np.int64)
    ids = np.array([i for i, _ in r.manifest["image_filenames"]])
    np.add.at(got, (labels[ids], _bins_numpy(f[ids])), 1)
    np.testing.assert_array_equal(got, np.minimum(avail, np.array(shifted)))
    assert all(isinstance(i, int) and isinstance(c, int) for i, c in r.manifest["image_filenames"])
    assert r.shortfalls["missing"].sum() == int(np.clip(np.array(shifted) - avail, 0, None).sum())
