"""generalization: build new test sets, evaluate models on them, and measure how far accuracy falls.

Data flows one way: sources (releases, published tables, evaluations, sampler manifests) -> store ->
analysis -> tables and figures.
"""

from .store.records import PredictionStore
from .test_sets import TEST_SETS

__version__ = "0.1.0"
__all__ = ["PredictionStore", "TEST_SETS", "__version__"]
