"""Annotation tables: readers, bad-row reports with line numbers, selection frequencies (also from CIFAR-10H
vote counts) and worker quality, recovered from simulated annotations with known truth."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from generalization.cli import main
from generalization.files import DataError
from generalization.sampler import annotations as an
from generalization.sampler import frequencies as fq

# ------------------------------------------------------------------------------------ CIFAR-10H counts


def test_selection_frequencies_from_cifar10h_counts(shared_data):
    counts = np.load(shared_data / "cifar10h" / "cifar10h-counts.npy", allow_pickle=False)
    labels = np.load(
        shared_data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy", allow_pickle=False
    ).astype(np.int64)
    t = fq.selection_frequencies_from_counts(counts, labels)
    assert len(t) == 10_000 and t["image_id"].tolist() == list(range(10_000))
    rows = np.arange(10_000)
    np.testing.assert_array_equal(t["num_annotations"].to_numpy(), counts.sum(axis=1))
    np.testing.assert_array_equal(t["num_selected"].to_numpy(), counts[rows, labels])
    np.testing.assert_allclose(t["selection_frequency"].to_numpy(), counts[rows, labels] / counts.sum(axis=1))
    # ../shared/README.md: median 0.98, about 1 % of images below 0.47; 47-63 annotators each
    assert abs(t["selection_frequency"].median() - 0.98) < 0.01
    assert 0.005 < (t["selection_frequency"] < 0.47).mean() < 0.015
    assert t["num_annotations"].between(47, 63).all()


def test_selection_frequencies_from_counts_checks_inputs():
    c = np.array([[3, 1], [0, 0]])
    t = fq.selection_frequencies_from_counts(c, np.array([1, 0]), image_ids=["a", "b"])
    assert t["selection_frequency"].iloc[0] == 0.25 and np.isnan(t["selection_frequency"].iloc[1])
    with pytest.raises(DataError, match="2-D"):
        fq.selection_frequencies_from_counts(np.zeros(3, dtype=int), np.zeros(3, dtype=int))
    with pytest.raises(DataError, match="labels must lie"):
        fq.selection_frequencies_from_counts(c, np.array([0, 2]))
    with pytest.raises(DataError, match="non-negative"):
        fq.selection_frequencies_from_counts(-c, np.array([0, 1]))
    with pytest.raises(DataError, match="whole vote counts"):
        fq.selection_frequencies_from_counts(c + 0.5, np.array([0, 1]))


# ------------------------------------------------------------------------------ long format, problems


LONG = """worker_id,task_id,image_id,class,selected,status
w1,t1,i1,A,yes,Approved
w1,t1,i2,A,no,Approved
w2,t1,i1,A,1,Submitted
w2,t1,i2,A,0,Rejected
w3,t1,i1,A,maybe,Submitted
w3,t1,zz,A,true,Submitted
w3,t1,i2,Q,true,Submitted
w1,t1,i1,A,yes,Approved
w4,t2,i1,A,true,Submitted
"""


def test_long_format_bad_rows_reported_with_line_numbers(tmp_path):
    path = tmp_path / "ann.csv"
    path.write_text(LONG)
    ann, problems = an.load_annotations(path, known_images=["i1", "i2"], classes=["A", "B"])
    got = dict(zip(problems["line"], problems["reason"], strict=True))
    assert got == {
        6: "unreadable 'selected' value",
        7: "unknown image",
        8: "unknown class",
        9: "duplicate assignment (same assignment and image twice)",
    }
    assert (problems["file"] == str(path)).all()
    assert len(ann) + len(problems) == 9  # nothing silently dropped
    freq = fq.selection_frequencies(ann, min_annotations=3).set_index(["image_id", "class"])
    # i1/A: w1 yes, w2 yes, w4 yes -> 3/3; i2/A: w1 no, w2 rejected (not counted) -> 0/1
    assert freq.loc[("i1", "A"), ["num_annotations", "num_selected"]].tolist() == [3, 3]
    assert freq.loc[("i2", "A"), ["num_annotations", "num_selected"]].tolist() == [1, 0]
    assert freq.loc[("i1", "A"), "enough_annotations"] and not freq.loc[("i2", "A"), "enough_annotations"]


def test_worker_doing_a_task_twice_is_a_duplicate_assignment():
    df = pd.DataFrame(
        {
            "worker_id": ["w", "w", "w"],
            "assignment_id": ["a1", "a1", "a2"],
            "task_id": ["t"] * 3,
            "image_id": ["i1", "i2", "i1"],
            "class": ["A"] * 3,
            "selected": ["1", "0", "1"],
        }
    )
    ann, problems = an.load_annotations(df, format="long")
    assert problems["reason"].tolist() == ["duplicate assignment (worker already did this task)"]
    assert problems["line"].tolist() == [4]


def test_jsonl_and_parquet_read_like_csv(tmp_path):
    df = pd.read_csv(pd.io.common.StringIO(LONG), dtype=str, keep_default_na=False)
    df.to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    df.to_parquet(tmp_path / "a.parquet")
    (tmp_path / "a.csv").write_text(LONG)
    out = {}
    for name in ("a.csv", "a.jsonl", "a.parquet"):
        ann, problems = an.load_annotations(tmp_path / name, known_images=["i1", "i2"], classes=["A"])
        out[name] = (ann.drop(columns="line").to_dict("records"), problems["reason"].tolist())
    assert out["a.csv"] == out["a.jsonl"] == out["a.parquet"]
    (tmp_path / "b.jsonl").write_text('{"worker_id": "w"}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        an.read_table(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").write_text('{"worker_id": "w"}\n')
    with pytest.raises(DataError, match="lacks column"):
        an.load_annotations(tmp_path / "c.jsonl", format="long")


# ------------------------------------------------------------------------------------- simulation


def _simulate(seed=0, n_images=400, n_workers=40, n_classes=8):
    """Annotations with known truth: each image has a true selection probability p, each worker a true
    sensitivity / false-positive rate on controls; 15 % of workers are spammers who click at random."""
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(n_classes)]
    img_class = {f"img{i:04d}": classes[i % n_classes] for i in range(n_images)}
    p = {im: float(rng.beta(4, 1.5)) for im in img_class}
    spam = rng.random(n_workers) < 0.15
    sens = np.where(spam, 0.5, rng.uniform(0.85, 1.0, n_workers))
    fpr = np.where(spam, 0.5, rng.uniform(0.0, 0.1, n_workers))
    workers = [f"w{i:02d}" for i in range(n_workers)]
    rows, task = [], 0
    pos_pool = {c: [f"pos_{c}_{k}" for k in range(10)] for c in classes}
    for c in classes:
        ims = [im for im, cc in img_class.items() if cc == c]
        for start in range(0, len(ims), 10):
            chunk = ims[start : start + 10]
            task += 1
            tid = f"t{task:03d}"
            other = classes[(classes.index(c) + 1) % n_classes]
            for w in rng.choice(n_workers, 12, replace=False):
                a = f"{tid}-{workers[w]}"
                for im in chunk:
                    sel = rng.random() < (0.5 if spam[w] else p[im])
                    rows.append((workers[w], a, tid, im, c, sel, "Submitted", "candidate"))
                for im in rng.choice(pos_pool[c], 3, replace=False):
                    rows.append(
                        (workers[w], a, tid, str(im), c, rng.random() < sens[w], "Approved", "positive")
                    )
                for im in rng.choice(pos_pool[other], 3, replace=False):
                    rows.append(
                        (workers[w], a, tid, str(im), c, rng.random() < fpr[w], "Approved", "negative")
                    )
    df = pd.DataFrame(
        rows,
        columns=["worker_id", "assignment_id", "task_id", "image_id", "class", "selected", "status", "role"],
    )
    return df, p, dict(zip(workers, zip(sens, fpr, spam, strict=True), strict=True))


def test_simulated_selection_frequency_and_worker_quality_recover_truth(tmp_path):
    df, p, truth = _simulate()
    df.to_csv(tmp_path / "ann.csv", index=False)
    ann, problems = an.load_annotations(tmp_path / "ann.csv")
    assert len(problems) == 0 and len(ann) == len(df)
    freq = fq.selection_frequencies(ann)
    # exact: the counts equal a direct tally of the raw rows
    cand = df[df["role"] == "candidate"]
    tally = cand.groupby("image_id")["selected"].agg(["size", "sum"])
    f = freq.set_index("image_id")
    assert (f["num_annotations"] == tally["size"].reindex(f.index)).all()
    assert (f["num_selected"] == tally["sum"].reindex(f.index)).all()
    assert len(freq) == len(p)  # controls are not candidates

    q = fq.worker_quality(ann).set_index("worker_id")
    sens = np.array([truth[w][0] for w in q.index])
    fpr = np.array([truth[w][1] for w in q.index])
    # each worker answers ~ 40 positive and 40 negative controls: binomial s.e. <= 0.08
    assert np.abs(q["positive_rate"].to_numpy() - sens).max() < 0.25
    assert np.abs(q["positive_rate"].to_numpy() - sens).mean() < 0.07
    assert np.abs(q["negative_rate"].to_numpy() - fpr).mean() < 0.07
    spammers = sorted(w for w, t in truth.items() if t[2])
    cut = fq.workers_below(q.reset_index(), 0.75)
    assert cut == spammers and len(spammers) >= 3

    # with the spammers cut, frequencies recover the true p (12 workers, ~10 after the cut)
    clean = fq.selection_frequencies(ann, exclude_workers=cut).set_index("image_id")
    err = np.abs(clean["selection_frequency"] - pd.Series(p).reindex(clean.index))
    dirty = fq.selection_frequencies(ann).set_index("image_id")
    err_dirty = np.abs(dirty["selection_frequency"] - pd.Series(p).reindex(dirty.index))
    assert err.mean() < 0.12 and err.mean() < err_dirty.mean()

    # the CLI applies the same cut and writes the worker-quality table beside the frequencies
    assert (
        main(
            [
                "selection-frequency",
                str(tmp_path / "ann.csv"),
                "--min-control-accuracy",
                "0.75",
                "--min-annotations",
                "5",
                "--out",
                str(tmp_path / "freq.csv"),
            ]
        )
        == 0
    )
    written = pd.read_csv(tmp_path / "freq.csv", dtype={"image_id": str})
    wq = pd.read_csv(tmp_path / "freq.worker_quality.csv")
    assert sorted(wq.loc[wq["excluded"], "worker_id"]) == spammers
    np.testing.assert_allclose(
        written.set_index("image_id")["selection_frequency"].sort_index(),
        clean["selection_frequency"].sort_index(),
    )


# ---------------------------------------------------------------------------------------- MTurk


def test_mturk_batch_results_expand_with_roles(tmp_path):
    from generalization.sampler import tasks as tk

    cand = pd.DataFrame({"image_id": [f"c{i}" for i in range(50)], "class": ["A"] * 42 + ["B"] * 8})
    pos = pd.DataFrame({"image_id": [f"p{i}" for i in range(8)], "class": ["A"] * 4 + ["B"] * 4})
    tasks = tk.make_tasks(cand, pos, seed=1, n_candidates=42)
    tk.write_tasks(tasks, tmp_path / "t", pages=False)
    batch = pd.read_csv(tmp_path / "t" / "mturk_batch_input.csv", dtype=str)
    rows = []
    for k, r in enumerate(batch.itertuples()):
        payload = json.loads(base64.b64decode(r.task_b64))
        shown = [im["image_id"] for im in payload["images"]]
        rows.append(
            {
                "HITId": f"H{k}",
                "AssignmentId": f"A{k}",
                "WorkerId": "W1",
                "AssignmentStatus": "Submitted",
                "Input.task_id": r.task_id,
                "Input.task_b64": r.task_b64,
                "Answer.selected": json.dumps(shown[:5]),
            }
        )
    rows.append(
        {
            **rows[0],
            "AssignmentId": "A9",
            "WorkerId": "W2",
            "Answer.selected": "nope,[",
            "Input.task_b64": "!!",
        }
    )
    rows.append({**rows[0]})  # the same assignment again
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    ann, problems = an.load_annotations(tmp_path / "results.csv", tasks=tmp_path / "t" / "tasks.csv")
    n0 = int(batch["num_images"].iloc[0])
    assert problems["line"].tolist() == [4] + [5] * n0  # one per unreadable row, one per duplicated image
    assert problems["reason"].iloc[0].startswith("unreadable task or answer")
    assert (problems["reason"].iloc[1:] == "duplicate assignment (same assignment and image twice)").all()
    assert len(ann) == sum(batch["num_images"].astype(int))
    first = ann[ann["assignment_id"] == "A0"]
    t0 = tasks[tasks["task_id"] == batch["task_id"].iloc[0]].sort_values("position")
    assert first["image_id"].tolist() == t0["image_id"].tolist()
    assert first["selected"].tolist() == [True] * 5 + [False] * (len(t0) - 5)
    assert first["role"].tolist() == t0["role"].tolist()
    assert (ann["worker_id"] == "W1").all()


def test_selection_frequency_cli_from_counts(tmp_path):
    counts = np.array([[5, 1, 0], [2, 2, 2], [0, 0, 7]])
    np.save(tmp_path / "counts.npy", counts)
    np.save(tmp_path / "labels.npy", np.array([0, 1, 1]))
    assert (
        main(
            [
                "selection-frequency",
                "--counts",
                str(tmp_path / "counts.npy"),
                "--labels",
                str(tmp_path / "labels.npy"),
                "--out",
                str(tmp_path / "f.csv"),
            ]
        )
        == 0
    )
    f = pd.read_csv(tmp_path / "f.csv")
    np.testing.assert_allclose(f["selection_frequency"], [5 / 6, 2 / 6, 0.0])
    assert f["num_annotations"].tolist() == [6, 6, 7]
