"""Shifted target histograms for MatchedFrequency: a named shift of a set's own histogram, and target files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generalization.files import DataError
from generalization.sampler.strategies import read_targets, shift_histogram


def test_shift_histogram_is_exact():
    h = np.array([10, 20, 30, 40, 100])
    got = shift_histogram(h, 0.25)
    want = np.array([10 + 5, 15 + 7.5, 22.5 + 10, 30 + 25, 75]) * 10**6
    np.testing.assert_array_equal(got, want.astype(np.int64))
    assert got.sum() == h.sum() * 10**6
    np.testing.assert_array_equal(shift_histogram(h, 0.0), h * 10**6)
    with pytest.raises(ValueError):
        shift_histogram(h, 1.5)



def test_read_targets(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"class": [1, 0], "0": [1, 0], "1": [0, 0], "2": [0, 1], "3": [2, 2], "4": [7, 7]}).to_csv(
        p, index=False
    )
    t = read_targets(p)
    # classes as text, like the candidates' classes (the sampler reads every table as text), in the file's order
    assert list(t.index) == ["1", "0"] and list(t.columns) == [0, 1, 2, 3, 4] and t.loc["1", 3] == 2
    assert t.to_numpy().dtype == np.int64
    p.write_text("class,0,1\n0,1,2\n")
    with pytest.raises(DataError, match="expected columns class, 0, 1, 2, 3, 4"):
        read_targets(p)
    p.write_text("class,0,1,2,3,4\n0,1,2,3,4,5\n1,1,2,-3,4,5\n")
    with pytest.raises(DataError, match="line 3: target counts must be whole numbers >= 0"):
        read_targets(p)
