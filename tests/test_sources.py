"""The result-source registry: one home for source names, labels, styles and roles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from generalization import sources
from generalization.analysis import trends
from generalization.evaluator import runner
from generalization.store import importers

PACKAGE = Path(__file__).resolve().parents[1] / "generalization"


def test_known_sources_and_their_roles():
    assert set(sources.SOURCES) == {"imagenetv2-release", "cifar10.1-release", "timm", "testbed", "evaluate",
                                    "evaluate-bf16"}  # fmt: skip
    assert sources.baseline_sources() == {"imagenet-val": "imagenetv2-release", "cifar10-test": "cifar10.1-release"}
    assert trends.REFERENCE_SOURCES == sources.baseline_sources()
    assert trends.FISHER_VECTOR_MODELS == {"imagenetv2-release": ("fv_4k", "fv_16k", "fv_64k")}
    assert trends.MODEL_SETS["paper"].exclude == trends.FISHER_VECTOR_MODELS
    assert (importers.IMAGENETV2_SOURCE, importers.CIFAR101_SOURCE) == ("imagenetv2-release", "cifar10.1-release")
    assert runner.SOURCES == {"fp32": "evaluate", "bf16": "evaluate-bf16"}


def test_a_baseline_names_its_original():
    with pytest.raises(ValueError, match="original"):
        sources.Source("x", "x", "k", "o", fits_baseline=True)


def test_unknown_sources_get_distinct_deterministic_styles():
    known = {(s.color, s.marker) for s in sources.SOURCES.values()}
    drawn = ["timm", "zeta", "mine", "alpha"]
    styles = [sources.get_source(s, drawn) for s in ("alpha", "mine", "zeta")]
    # sorted unknown names take the spare styles in order: never two alike in one figure, never a known style
    assert [(s.color, s.marker) for s in styles] == list(sources.SPARE_STYLES[:3])
    assert not {(s.color, s.marker) for s in styles} & known
    assert [s.label for s in styles] == ["alpha", "mine", "zeta"] and not any(s.fits_baseline for s in styles)
    alone = sources.get_source("mine")
    assert alone == sources.get_source("mine")  # same name, same style, whatever else exists
    assert (alone.color, alone.marker) in sources.SPARE_STYLES


# the same words in other roles, not source names
OTHER_ROLES = {
    ("cli/evaluator_commands.py", "evaluate"),  # the subcommand
    ("cli/store_commands.py", "timm"),  # `import timm`, a subcommand
    ("cli/store_commands.py", "testbed"),  # `import testbed`, a subcommand
    ("evaluator/dataset_registry.py", "timm"),  # the timm package
    ("evaluator/models.py", "timm"),  # the model family's prefix
    ("evaluator/runner.py", "evaluate"),  # the function, in __all__
}


def test_no_module_spells_a_known_source_name():
    """Source names are written once, in sources.py: every other module takes them from there."""
    names = set(sources.SOURCES)
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "sources.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                      and isinstance(n.body[0], ast.Expr)}  # fmt: skip
        for node in ast.walk(tree):
            rel = path.relative_to(PACKAGE).as_posix()
            if (isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings
                    and (rel, node.value) not in OTHER_ROLES):
                offenders.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not offenders, offenders
