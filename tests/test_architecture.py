"""The architecture's rules, checked on the import graph of the package (parsed with ast, nothing imported).

Floors, bottom to top: the ground floor (``files``, ``metrics``, ``test_sets``, ``devices``, ``constants``:
every module directly in ``generalization/``) < ``store/`` < the subsystems ``evaluator/``, ``sampler/``,
``analysis/`` < the top (``cli``, ``__main__``, ``workflows``, the package's ``__init__`` that re-exports the
public API). Rules: no import cycle; nothing imports a higher floor; the subsystems do not import each other
(they meet in the store), in particular the sampler never imports the evaluator and the store imports none of
them. Lazy imports inside functions count: a cycle through a function-level import is still a cycle.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "generalization"

SUBPACKAGES = {"store": 1, "evaluator": 2, "sampler": 2, "analysis": 2}
TOP = {"", "cli", "__main__", "workflows"}  # "" is the package's __init__ (the public facade)
TOP_FLOOR = 3

# Imports between sibling subsystems that the rules would refuse, each as (importer, imported) with a comment
# saying why it is tolerated; the test fails when one is no longer needed. Empty: what two subsystems both need
# lives on the ground floor (e.g. ``generalization.selection_frequency``: the frequency bins and votes ->
# frequencies, used by the sampler and the analysis), and what combines them is a workflow on the top floor
# (e.g. ``generalization.workflows.selection_frequency_study``: resamples drawn with the sampler, scored with the
# analysis).
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for every ``.py`` file under ``root``."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    top = root.name
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]  # the package relative imports start from
        deps: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        # imports under `if TYPE_CHECKING:` are for annotations only: no run-time dependency
        typing_only = {id(n) for b in ast.walk(tree) if isinstance(b, ast.If) and ast.unparse(b.test).endswith("TYPE_CHECKING")
                       for stmt in b.body for n in ast.walk(stmt)}  # fmt: skip
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module.split(".") if node.module else []
                if node.level:
                    base = here[: len(here) - node.level + 1] + base
                # `from pkg import name`: the module pkg.name when it is one, else pkg itself
                targets = [
                    ".".join([*base, a.name]) if ".".join([*base, a.name]) in files else ".".join(base)
                    for a in node.names
                ]
            else:
                continue
            for t in targets:
                if t == top or t.startswith(top + "."):
                    while t not in files and "." in t:  # `import pkg.mod.attr` -> pkg.mod
                        t = t.rsplit(".", 1)[0]
                    if t != mod:
                        deps.add(t)
        graph[mod] = deps
    return graph


def floor(module: str) -> tuple[int, str]:
    """``(floor, subsystem)`` of a module of the package."""
    parts = module.split(".")[1:]
    if not parts or (len(parts) == 1 and parts[0] in TOP):
        return TOP_FLOOR, parts[0] if parts else ""
    if parts[0] in ("cli", "workflows"):  # the cli and workflows packages: every module is on the top floor
        return TOP_FLOOR, parts[0]
    if len(parts) == 1:
        return 0, "ground"
    if parts[0] not in SUBPACKAGES:
        raise AssertionError(f"{module}: a new subpackage; give it a floor in tests/test_architecture.py")
    return SUBPACKAGES[parts[0]], parts[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def violations(graph: dict[str, set[str]], allowed: set[tuple[str, str]] = ALLOWED) -> list[str]:
    """Every broken rule, one line each (empty when the architecture holds)."""
    out = [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    for mod in sorted(graph):
        f_mod, sub_mod = floor(mod)
        for dep in sorted(graph[mod]):
            f_dep, sub_dep = floor(dep)
            if f_dep > f_mod:
                out.append(f"{mod} imports {dep}: upward ({sub_mod} is below {sub_dep})")
            elif f_dep == f_mod == 2 and sub_dep != sub_mod and (mod, dep) not in allowed:
                out.append(f"{mod} imports {dep}: {sub_mod} imports its sibling {sub_dep}")
    return out


def test_the_package_keeps_its_architecture():
    graph = import_graph()
    assert "generalization.evaluator.runner" in graph and "generalization.store.records" in graph
    assert violations(graph) == []
    # each tolerated exception is still needed (else it is removed from ALLOWED)
    for mod, dep in sorted(ALLOWED):
        assert dep in graph[mod], f"{mod} no longer imports {dep}: drop it from ALLOWED"


def test_the_parser_sees_relative_lazy_and_absolute_imports():
    graph = import_graph()
    assert "generalization.store.records" in graph["generalization.evaluator.runner"]  # from ..store.records
    assert "generalization.analysis.plots" in graph["generalization.analysis.report"]  # from . import plots
    assert "generalization.store.importers" in graph["generalization.cli.store_commands"]  # inside a function
    assert "generalization.cli.store_commands" in graph["generalization.cli"]  # from .store_commands import ...
    assert "generalization.cli" in graph["generalization.__main__"]


PLANTS = [
    # (file, planted import, the report expected)
    ("sampler/tasks.py", "from ..evaluator import runner",
     "generalization.sampler.tasks imports generalization.evaluator.runner: sampler imports its sibling evaluator"),
    ("store/records.py", "from ..analysis.trends import fit_trend",
     "generalization.store.records imports generalization.analysis.trends: upward (store is below analysis)"),
    ("store/importers.py", "from ..evaluator.datasets import load_dataset",
     "generalization.store.importers imports generalization.evaluator.datasets: upward (store is below evaluator)"),
    ("devices.py", "import generalization.store.records",
     "generalization.devices imports generalization.store.records: upward (ground is below store)"),
    ("evaluator/distributed.py", "from .runner import run_evaluation",
     "import cycle: generalization.evaluator.distributed -> generalization.evaluator.runner"),
    ("evaluator/models.py", "from ..cli.arguments import positive_int",
     "generalization.evaluator.models imports generalization.cli.arguments: upward (evaluator is below cli)"),
    ("analysis/selection_frequency.py", "from ..sampler.strategies import matched_frequency",
     "generalization.analysis.selection_frequency imports generalization.sampler.strategies: analysis imports its "
     "sibling sampler"),
    ("sampler/tasks.py", "from ..workflows.selection_frequency_study import write_report",
     "generalization.sampler.tasks imports generalization.workflows.selection_frequency_study: upward "
     "(sampler is below workflows)"),
    ("selection_frequency.py", "from .sampler import near_duplicates",
     "generalization.selection_frequency imports generalization.sampler.near_duplicates: upward (ground is below "
     "sampler)"),
]  # fmt: skip


def test_the_check_fails_on_planted_imports(tmp_path):
    """A copy of the package with one rule-breaking import planted at a time (inside a function, where a lazy
    import would hide it from a check that only imports the modules): each one is reported, alone."""
    root = tmp_path / "generalization"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "templates"))
    assert violations(import_graph(root)) == []  # the copy is as clean as the original
    for rel, line, expected in PLANTS:
        path = root / rel
        original = path.read_text()
        path.write_text(original + f"\n\ndef _planted():\n    {line}\n")
        assert violations(import_graph(root)) == [expected], rel
        path.write_text(original)
    # and on a synthetic graph: a cycle across floors is reported as a cycle and as an upward import
    synthetic = {
        "generalization.files": {"generalization.store.records"},
        "generalization.store.records": {"generalization.files"},
    }
    assert violations(synthetic) == [
        "import cycle: generalization.files -> generalization.store.records",
        "generalization.files imports generalization.store.records: upward (ground is below store)",
    ]
