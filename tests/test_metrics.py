"""Intervals against scipy's own constructions and the textbook formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from generalization.metrics import clopper_pearson, gap_interval, topk_correct


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (0, 1), (1, 1), (7831, 10000), (39155, 50000), (3, 2000)])
def test_clopper_pearson_matches_scipy_binomtest(k, n):
    lo, hi = clopper_pearson(k, n)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert lo == pytest.approx(ci.low, abs=1e-12)
    assert hi == pytest.approx(ci.high, abs=1e-12)


def test_clopper_pearson_edges_and_vectorised():
    lo, hi = clopper_pearson(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert lo[0] == 0.0 and hi[2] == 1.0
    assert hi[0] == pytest.approx(1 - 0.025 ** (1 / 10))  # closed form at k = 0
    assert lo[2] == pytest.approx(0.025 ** (1 / 10))  # closed form at k = n


def _wilson(k, n, z):
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return c - h, c + h


@pytest.mark.parametrize("k1,n1,k2,n2", [(7831, 10000, 6702, 10000), (39155, 50000, 6702, 10000), (10, 10, 0, 10), (0, 50, 0, 50)])
def test_gap_interval_is_newcombe(k1, n1, k2, n2):
    z = stats.norm.ppf(0.975)
    l1, u1 = _wilson(k1, n1, z)
    l2, u2 = _wilson(k2, n2, z)
    p1, p2 = k1 / n1, k2 / n2
    lo = p1 - p2 - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = p1 - p2 + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    gap, glo, ghi = gap_interval(k1, n1, k2, n2)
    assert gap[0] == pytest.approx(p1 - p2)
    assert glo[0] == pytest.approx(lo, abs=1e-9)
    assert ghi[0] == pytest.approx(hi, abs=1e-9)


def test_topk():
    labels = np.array([1, 2, 3])
    pred = np.array([[1, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 0, 0, 9]])
    assert topk_correct(pred, labels, 1) == 1
    assert topk_correct(pred, labels, 5) == 2
    with pytest.raises(ValueError):
        topk_correct(pred[:, :1], labels, 5)
