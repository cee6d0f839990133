"""Workflows that cross subsystems (the top floor: they may import the store, the evaluator, the sampler and
the analysis, which never import each other).

- :mod:`~generalization.workflows.reproduce_paper`: :func:`reproduce`, the paper's analysis end to end (the
  store's importers feeding :func:`generalization.analysis.report.write_results`).
- :mod:`~generalization.workflows.selection_frequency_study`: the CIFAR-10H selection-frequency study,
  frequency-shifted resamples drawn with the sampler and scored with the analysis, and its report writer
  ``write_report`` (prose in :mod:`~generalization.workflows.selection_frequency_text` and
  ``templates/selection_frequency_report.md.j2``).
"""

from .reproduce_paper import reproduce

__all__ = ["reproduce"]
