"""Reproduce the paper: the store's importers feeding the analysis.

:func:`reproduce` is the paper's analysis end to end: import the releases and published tables into a
store, then write the results folder (tables, figures, landscape, explorer, REPORT.md) with
:func:`generalization.analysis.report.write_results`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..analysis import trends
from ..analysis.report import PAPER_BOOTSTRAP, write_results
from ..files import DataError
from ..store import importers
from ..store.records import PredictionStore

__all__ = ["reproduce"]


def reproduce(
    *,
    out: str | os.PathLike = "results",
    imagenetv2_release: str | os.PathLike | None = None,
    cifar101_release: str | os.PathLike | None = None,
    cifar10_labels: str | os.PathLike | None = None,
    cifar10_root: str | os.PathLike | None = None,
    timm_results: list[str | os.PathLike] | None = None,
    testbed_results: str | os.PathLike | None = None,
    store: str | os.PathLike | None = None,
    n_bootstrap: int = PAPER_BOOTSTRAP,
    seed: int = 0,
    model_set: str | trends.ModelSet | list[str] | None = "paper",
    repair: bool = True,
) -> list[Path]:
    """Import whatever releases/tables are given into a store, then :func:`write_results` into ``out``.

    With no source given, rebuild the figures, fits and REPORT.md from ``out/accuracies.csv`` (what the
    project commits in ``results/``, with ``results/label-free/validation.csv`` for the label-free section),
    offline. ``model_set``: the models the trends are fitted on (default the paper's); ``repair``: let the
    ImageNetV2 importer repair arrays whose columns are out of rank order. Returns the paths written.
    """
    out = Path(out)
    given = [imagenetv2_release, cifar101_release, timm_results, testbed_results]
    if not any(v is not None for v in given):
        acc_path = out / "accuracies.csv"
        if not acc_path.exists():
            raise DataError(f"{acc_path}: no release given and no accuracies.csv to rebuild from "
                            "(pass --imagenetv2-release / --cifar101-release, see README)")  # fmt: skip
        return write_results(trends.read_accuracies(acc_path), out, n_bootstrap=n_bootstrap, seed=seed,
                             model_set=model_set, html=True)  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="generalization-store-") as tmp:
        st = PredictionStore(store if store is not None else tmp)
        if imagenetv2_release is not None:
            print(importers.import_imagenetv2(imagenetv2_release, st, repair=repair).summary())
        if cifar101_release is not None:
            if cifar10_labels is None and cifar10_root is None:
                raise DataError("the CIFAR-10.1 release needs the CIFAR-10 test labels: --cifar10-labels or --cifar10-root")
            if cifar10_labels is not None and cifar10_root is not None:
                cifar10_root = None  # an explicit labels file wins
            print(importers.import_cifar101(cifar101_release, st, cifar10_labels=cifar10_labels,
                                            cifar10_root=cifar10_root).summary())  # fmt: skip
        if timm_results:
            print(importers.import_timm_tables(list(timm_results), st).summary())  # every file, or a DataError
        if testbed_results is not None:
            print(importers.import_testbed(testbed_results, st).summary())
        return write_results(st.accuracy_table(verify=True), out, n_bootstrap=n_bootstrap, seed=seed,
                             model_set=model_set, html=True)  # fmt: skip
