"""REPORT.md: the prose is a template, every conclusion is computed from the numbers it sits beside."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from scipy import stats

from generalization.analysis import report
from generalization.analysis.agreement_validation import agreement_report_section
from generalization.files import DataError

ROOT = Path(__file__).resolve().parents[2]
PAIR = ("imagenet-val", "imagenetv2-matched-frequency")


def _fit(slope, lo, hi, members):
    return SimpleNamespace(slope=slope, slope_ci_low=lo, slope_ci_high=hi, model_set="paper", members=members)


def _gaps(gaps):
    return pd.DataFrame({"original_test_set": PAIR[0], "new_test_set": PAIR[1], "source": "s",
                         "model": [f"m{i}" for i in range(len(gaps))], "new": 50.0, "flag": "", "gap": gaps})  # fmt: skip


@pytest.mark.parametrize(
    ("ci", "gaps", "expect"),
    [
        ((1.05, 1.2), [10.0, 12.0, 14.0], ["every model is less accurate", "drops 10.00 to 14.00", "lies above 1",
                                           "as the paper finds"]),
        ((0.95, 1.05), [-1.0, 2.0, 3.0], ["1 of 3 models are more accurate", "includes 1: no evidence"]),
        ((0.8, 0.9), [1.0, 2.0, 3.0], ["lies below 1", "smaller gains", "unlike the paper"]),
    ],
)  # fmt: skip
def test_conclusions_follow_the_numbers(ci, gaps, expect):
    pm = _gaps(gaps)
    members = [("s", m) for m in pm["model"]]
    (line,) = report._conclusions({(*PAIR, "linear"): _fit(sum(ci) / 2, *ci, members)}, pm)
    for phrase in expect:
        assert phrase in line, line


def test_comparison_with_the_paper():
    phrases, agree = report._compare(1.110, 1.078, 1.188, 1.1, (1.07, 1.19), "slope")
    assert agree and phrases[-1] == "the intervals overlap"
    phrases, agree = report._compare(1.617, 1.531, 1.703, 1.7, (1.63, 1.76), "slope")
    assert not agree and phrases == ["the paper's ≈ 1.7 lies inside this interval",
                                     "this slope (1.617) lies below the paper's interval", "the intervals overlap"]
    phrases, agree = report._compare(1.3, 1.25, 1.35, 1.1, (1.07, 1.19), "slope")
    assert phrases == ["the paper's ≈ 1.1 lies below this interval", "this slope (1.300) lies above the paper's interval",
                       "the intervals do not overlap"]  # fmt: skip


def test_drop_range_ends_rounded_as_the_paper_rounds():
    lo, hi = pd.Series({"gap": 10.30, "model": "a"}), pd.Series({"gap": 13.62, "model": "b"})
    parts, missing = report._drop_why(lo, hi, (11.0, 14.0))
    assert parts == ["the smallest drop here, 10.30 points (a), rounds to 10, not 11"] and not missing
    parts, missing = report._drop_why(pd.Series({"gap": 4.14, "model": "a"}), hi, (3.0, 14.0))
    assert missing and len(parts) == 1
    assert report._drop_why(pd.Series({"gap": 10.6, "model": "a"}), hi, (11.0, 14.0)) == ([], False)


def test_coverage_verdicts_use_the_binomial_range():
    # Binomial(120, 0.95): the central 95 % range, computed here from the pmf
    k = list(range(121))
    cdf = stats.binom.cdf(k, 120, 0.95)
    lo = next(i for i in k if cdf[i] >= 0.025)
    cov = pd.DataFrame({"original": PAIR[0], "new": PAIR[1], "source": ["in", "out"], "models": 120,
                        "covered": [lo, lo - 1], "coverage %": 0.0, "below": [0, 1], "above": [0, 5],
                        "extrapolated": [0, 20], "coverage % (not extrapolated)": [0.0, 97.0]})  # fmt: skip
    ok, bad = report._coverage_verdicts(cov, 0.95)
    assert ok.endswith("consistent with the nominal level")
    assert "below the nominal level: 5 lie above their interval, 1 below it; 20 of the 120 are extrapolated" in bad
    assert "97.0 % of the other 100 are covered" in bad


def test_label_free_section_from_the_committed_validation(tmp_path):
    assert report._label_free_section(tmp_path) == ""
    (tmp_path / "label-free").mkdir()
    shutil.copy(ROOT / "results" / "label-free" / "validation.csv", tmp_path / "label-free" / "validation.csv")
    summary = pd.read_csv(ROOT / "results" / "label-free" / "validation.csv")
    assert report._label_free_section(tmp_path) == agreement_report_section(summary)
    (tmp_path / "label-free" / "validation.csv").write_text("new_test_set,method\nx,other\n")
    with pytest.raises(DataError, match="validation.csv"):
        report._label_free_section(tmp_path)


def test_template_renders_only_from_its_context():
    """A missing value is an error, never an empty sentence (StrictUndefined)."""
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        report.render_report({"n_rows": 1})


def test_write_results_renders_the_computed_report(tmp_path):
    """The CIFAR-10 rows of the committed accuracies: the CIFAR paragraph, the conclusion, the label-free section."""
    from generalization.analysis import trends

    acc = trends.read_accuracies(ROOT / "results" / "accuracies.csv")
    acc = acc[acc["test_set"].isin(["cifar10-test", "cifar10.1-v4"])].reset_index(drop=True)
    (tmp_path / "label-free").mkdir()
    shutil.copy(ROOT / "results" / "label-free" / "validation.csv", tmp_path / "label-free" / "validation.csv")
    report.write_results(acc, tmp_path, n_bootstrap=50)
    text = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
    gaps = (acc.pivot(index="model", columns="test_set", values="top1").eval("`cifar10-test` - `cifar10.1-v4`"))
    assert f"every model is less accurate on CIFAR-10.1 v4 (drops {gaps.min():.2f} to {gaps.max():.2f} points)" in text
    assert "**CIFAR-10.** " in text and "Figure 1 uses v4" in text
    assert "## Label-free prediction" in text and "| cifar10.1-v4 | 30 |" in text
    assert "\n\n\n" not in text and text.endswith("|\n")


def _pid_and(value):
    import os

    return os.getpid(), value


@pytest.mark.parametrize("processes", [1, 2])
def test_drawing_tasks_run_in_order_in_forked_processes_or_inline(monkeypatch, processes):
    import os
    from functools import partial

    monkeypatch.setattr(report, "DRAWING_PROCESSES", processes)
    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)
    forks = processes > 1 and "fork" in report.multiprocessing.get_all_start_methods()
    results = report._run_tasks([partial(_pid_and, k) for k in range(5)])
    assert [v for _, v in results] == list(range(5))  # results come back in task order
    assert all((pid != os.getpid()) == forks for pid, _ in results)
    with report._in_background(partial(_pid_and, "landscape")) as result:
        pid, value = result()
    assert value == "landscape" and (pid != os.getpid()) == forks


def test_a_background_failure_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(report, "DRAWING_PROCESSES", 2)

    def fails():
        raise DataError("bad table")

    with pytest.raises(DataError, match="bad table"), report._in_background(fails) as result:
        result()
