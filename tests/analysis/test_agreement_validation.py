"""The validation of agreement on the line against labels: the REPORT.md section built from its rows.

(The validation on a real store, :func:`bootstrap_validation_error`, is tested in test_agreement.py beside the
store fixture it shares with the method's tests.)
"""

from __future__ import annotations

import pandas as pd
import pytest

from generalization.analysis import agreement_validation as av
from generalization.files import DataError


def test_report_section_keeps_the_default_variant_and_its_numbers():
    rows = pd.DataFrame([
        {"new_test_set": "set-a", "method": "aline-d", "scale": "probit", "n_models": 5, "r2": 0.99, "level": 0.9,
         "agreement_mae": 1.234, "agreement_max_error": 2.5, "agreement_mean_error": -1.0, "agreement_coverage": 80.0,
         "accuracy_line_mae": 0.5, "accuracy_line_max_error": 1.0, "accuracy_line_coverage": 100.0, "no_drop_mae": 9.0},
    ])
    other = rows.assign(scale="logit", agreement_mae=7.0)
    text = av.agreement_report_section(pd.concat([rows, other]), notes=["a note"])
    assert "| set-a | 5 | 0.990 | 1.23 | 2.50 | -1.00 | 80 % | 0.50 | 1.00 | 100 % | 9.00 |" in text
    assert "7.00" not in text and "90 % interval" in text and "- a note" in text
    with pytest.raises(DataError):
        av.agreement_report_section(rows, method="aline-s")
    extra = rows.assign(agreement_mae_ci_low=0.9, agreement_mae_ci_high=1.6, agreement_coverage_no_offset=40.0,
                        offset_sd=0.04)
    text = av.agreement_report_section(extra)
    assert "| set-a | 5 | 0.990 | 1.23 (0.90–1.60) | 2.50 | -1.00 | 80 % (40 %) | 0.50 |" in text
    assert "systematic offset" in text
