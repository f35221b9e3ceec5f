"""The layer rules of docs/ARCHITECTURE.md (../shared/ARCHITECTURE.md and its layer rules), checked over
every import in genart/ and app/.

Most of genart's internal imports sit inside functions (to keep ``import genart`` cheap), so a
checker that reads only module-level imports would miss most of the graph. This one walks every
``import`` / ``from ... import`` node of every module with ``ast``, function-local ones included;
only imports under ``if TYPE_CHECKING:`` are skipped (they never run). The rules themselves are
spelled out in ARCHITECTURE.md's "Layer rules" section; ``rule_broken`` is their one definition.

Rules that today's code still breaks are listed in ``KNOWN_VIOLATIONS`` / ``KNOWN_CYCLES`` /
``SQL_OUTSIDE_STORE`` with the reason; the test fails when a listed exception no longer happens, so
those lists can only shrink. A new violation fails the test with the file and line of the import.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("genart", "app")

# --- layers -----------------------------------------------------------------------------------------
#: Shared, stage-free modules anything may import (the typed contract, errors, settings, small helpers).
FOUNDATION = frozenset({
    "genart.types", "genart.errors", "genart.config", "genart._yaml", "genart.ids", "genart.files",
    "genart.progress", "genart.workers", "genart.imaging", "genart.provenance", "genart.casting",
    "genart.access",
})
#: The stages of the flow; each is a package ``genart.<stage>`` (with its submodules).
STAGES = frozenset({"genart.models", "genart.frames", "genart.profiles", "genart.generate", "genart.rank",
                    "genart.bandit"})
#: Which other stages a stage may use: generation and ranking run the loaded models. Nothing else.
STAGE_MAY_USE: Mapping[str, frozenset[str]] = {
    "genart.generate": frozenset({"genart.models", "genart.profiles"}),
    "genart.rank": frozenset({"genart.models", "genart.profiles"}),
}
#: The sink every stage's result lands in; it knows the types, never the stages.
STORE = "genart.store"
#: Test fakes and contract suites, shipped in the package: the typed contract only (no torch, no stages).
TESTING = "genart.testing"
#: Wiring: these may import stages, the store and each other (but not ``app``).
ORCHESTRATION = frozenset({
    "genart", "genart.api", "genart.pipeline", "genart.review", "genart.learning", "genart.export",
    "genart.demo", "genart.sheets", "genart.batch", "genart.usecases",
})
#: What the front ends (the CLI's commands and the Gradio app) may import: the public facade only.
FRONT_END_MAY_USE = frozenset({"genart", "genart.api", "genart.types", "genart.errors"})


def layer_of(module: str) -> str:
    """The layer key of ``module``: a stage / store / testing / orchestration package, or the module."""
    parts = module.split(".")
    if parts[0] == "app":
        return "app"
    two = ".".join(parts[:2])
    if two in STAGES or two in (STORE, TESTING) or two in ("genart.batch", "genart.usecases"):
        return two
    return module


@dataclass(frozen=True)
class Edge:
    """One import of ``target`` (a module of the repo) by ``source``, at ``path:line``."""

    source: str
    target: str
    path: str
    line: int
    names: tuple[str, ...] = ()  # the names a ``from target import ...`` takes

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.target

    def where(self) -> str:
        return f"{self.path}:{self.line}"


# --- collecting every import ---------------------------------------------------------------------------
def module_files(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/<package>``."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_module_call(node: ast.AST) -> str | None:
    """The module an ``importlib.import_module("literal")`` call names (None for anything else)."""
    if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                 or (isinstance(node.func, ast.Name) and node.func.id == "import_module"))):
        return node.args[0].value
    return None


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import node, at any depth, except the body of ``if TYPE_CHECKING:`` (its else runs);
    an ``importlib.import_module("a.b")`` call with a literal name counts as ``import a.b``. (A name
    computed at run time is not seen: today's one, genart.bandit's lazy facade, stays inside bandit/.)"""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        literal = _import_module_call(node)
        if literal is not None:
            yield ast.copy_location(ast.Import(names=[ast.alias(name=literal)]), node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the repo (None for a third-party import)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def collect_edges(root: Path, packages: Iterable[str] = PACKAGES) -> tuple[list[Edge], dict[str, set[str]]]:
    """Every internal import edge of ``root``'s packages, and every third-party top-level name per module.

    ``from genart import x`` is an edge to ``genart.x`` when ``x`` is a submodule, else to ``genart``;
    relative imports are resolved against the importing module's package. An import of one of the
    importer's own ancestor packages (``genart.frames.select`` -> ``genart.frames``, anything -> ``genart``)
    is left out: Python runs those ``__init__`` files for any import below them anyway, so the edge says
    nothing about the design and would put every package into a cycle with its own modules.
    """
    modules = module_files(root, packages)
    edges: list[Edge] = []
    external: dict[str, set[str]] = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        rel = str(path.relative_to(root))
        ancestors = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for node in _import_nodes(tree):
            found: list[tuple[str, tuple[str, ...]]] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _resolve(alias.name, modules)
                    if target is None:
                        external.setdefault(mod, set()).add(alias.name.split(".")[0])
                    else:
                        found.append((target, ()))
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_name = node.module or ""
                if _resolve(base_name, modules) is None and not node.level:
                    external.setdefault(mod, set()).add(base_name.split(".")[0])
                    continue
                plain: list[str] = []
                for alias in node.names:
                    sub = f"{base_name}.{alias.name}"
                    if sub in modules:
                        found.append((sub, ()))
                    else:
                        plain.append(alias.name)
                if plain:
                    target = _resolve(base_name, modules)
                    if target is not None:
                        found.append((target, tuple(plain)))
            for target, names in found:
                if target != mod and target not in ancestors:
                    edges.append(Edge(mod, target, rel, node.lineno, names))
    return edges, external


# --- the rules ----------------------------------------------------------------------------------------
#: The front ends: the CLI's commands and the Gradio app. They go through the public facade.
FRONT_ENDS = frozenset({"genart.cli", "genart.bandit.cli", "genart.cli_errors"})


def is_front_end(module: str) -> bool:
    return module == "app" or module.startswith("app.") or module in FRONT_ENDS


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def stage_of(module: str) -> str | None:
    return next((s for s in STAGES if _in(module, s)), None)


def kind_of(module: str) -> str:
    """``front``, ``foundation``, ``stage``, ``store``, ``testing`` or ``orchestration``."""
    if is_front_end(module):
        return "front"
    if module in FOUNDATION:
        return "foundation"
    if stage_of(module):
        return "stage"
    if _in(module, STORE):
        return "store"
    if _in(module, TESTING):
        return "testing"
    if any(_in(module, o) for o in ORCHESTRATION - {"genart"}) or module == "genart":
        return "orchestration"
    raise AssertionError(f"{module} has no layer: add it to one of the sets at the top of tests/test_layers.py")


@dataclass(frozen=True)
class Violation:
    rule: str
    edge: Edge

    @property
    def key(self) -> tuple[str, str, str]:
        return self.rule, self.edge.source, self.edge.target

    def __str__(self) -> str:
        e = self.edge
        names = f" ({', '.join(e.names)})" if e.names else ""
        return f"[{self.rule}] {e.source} -> {e.target}{names} at {e.where()}"


def rule_broken(edge: Edge) -> list[str]:
    """The names of the layer rules ``edge`` breaks (empty when it is fine)."""
    src, dst = edge.source, edge.target
    ks, kd = kind_of(src), kind_of(dst)
    broken = []
    if src.startswith("genart") and kd == "front" and dst.startswith("app"):
        broken.append("genart-imports-app")
    if ks == "front":
        own = "app" if src.startswith("app") else (stage_of(src) or src)
        if not (dst in FRONT_END_MAY_USE or kd in ("foundation", "front") or _in(dst, own)):
            broken.append("front-end-beyond-facade")
    elif ks in ("foundation", "stage", "store", "testing") and kd in ("orchestration", "front"):
        broken.append("imports-upward")
    if ks == "foundation" and kd not in ("foundation", "orchestration", "front"):
        broken.append("foundation-imports-a-layer")
    if ks == "stage" and kd == "stage":
        s, d = stage_of(src), stage_of(dst)
        if s != d and d not in STAGE_MAY_USE.get(s or "", frozenset()):
            broken.append("stage-imports-stage")
    if ks == "stage" and kd == "store":
        broken.append("stage-imports-store")
    if ks in ("store", "testing") and kd not in ("foundation", ks, "orchestration", "front"):
        broken.append(f"{ks}-imports-a-layer")
    private = [n for n in edge.names if n.startswith("_") and not n.startswith("__")]
    if private and layer_of(src) != layer_of(dst):
        broken.append("private-name-across-layers")
    return broken


def violations(edges: Iterable[Edge]) -> list[Violation]:
    return [Violation(rule, e) for e in edges for rule in rule_broken(e)]


def cycles(edges: Iterable[Edge]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def sql_outside_store(external: Mapping[str, set[str]]) -> set[str]:
    """The modules outside ``genart.store`` that import SQLAlchemy."""
    return {m for m, names in external.items() if "sqlalchemy" in names and not _in(m, STORE)}


# --- today's debt: each entry names a rule the code still breaks, and why it is not fixed yet ------------
#: (rule, importer, imported) -> why it is still there. The test fails when an entry no longer happens.
KNOWN_VIOLATIONS: Mapping[tuple[str, str, str], str] = {
}

#: Import cycles (function-local imports included) that exist today. Each must still be exactly a cycle:
#: when one shrinks or breaks up, write the smaller one here (or drop it).
KNOWN_CYCLES: Mapping[frozenset[str], str] = {
}

#: Modules outside genart/store/ that import SQLAlchemy today (#17: all SQL inside genart/store/).
SQL_OUTSIDE_STORE = frozenset({
})


# --- the tests ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph() -> tuple[list[Edge], dict[str, set[str]]]:
    return collect_edges(REPO)


def test_every_module_has_a_layer(graph) -> None:
    edges, _ = graph
    for module in module_files(REPO):
        kind_of(module)  # raises for a module no set at the top of this file places
    # the walk sees function-local imports: most of genart's internal imports are inside functions
    assert len(edges) > 300


def test_layer_rules_hold_except_the_known_debt(graph) -> None:
    edges, _ = graph
    found = violations(edges)
    new = sorted({str(v) for v in found if v.key not in KNOWN_VIOLATIONS})
    assert not new, "imports that break ARCHITECTURE.md's layer rules:\n  " + "\n  ".join(new)
    stale = sorted(set(KNOWN_VIOLATIONS) - {v.key for v in found})
    assert not stale, f"fixed, so remove from KNOWN_VIOLATIONS: {stale}"


def test_no_new_import_cycles(graph) -> None:
    edges, _ = graph
    found = set(cycles(edges))
    new = [sorted(c) for c in found - set(KNOWN_CYCLES)]
    assert not new, f"import cycles (function-local imports count): {new}"
    gone = [sorted(c) for c in set(KNOWN_CYCLES) - found]
    assert not gone, f"these cycles shrank or broke up: write what is left (or nothing) in KNOWN_CYCLES: {gone}"


def test_sqlalchemy_only_inside_the_store(graph) -> None:
    _, external = graph
    found = sql_outside_store(external)
    assert not found - SQL_OUTSIDE_STORE, f"SQLAlchemy imported outside genart/store/: {sorted(found - SQL_OUTSIDE_STORE)}"
    assert not SQL_OUTSIDE_STORE - found, f"no SQL there any more, drop from SQL_OUTSIDE_STORE: {sorted(SQL_OUTSIDE_STORE - found)}"
    assert any(_in(m, STORE) for m, names in external.items() if "sqlalchemy" in names)  # the walk sees it


# --- the checker itself fails on what it must catch -------------------------------------------------------
def _write(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_checker_catches_deliberate_violations(tmp_path: Path) -> None:
    _write(tmp_path, {
        "genart/__init__.py": "",
        "genart/types.py": "",
        "genart/errors.py": "",
        "genart/pipeline.py": "def _helper():\n    pass\n",
        "genart/cli.py": "def main():\n    from app import launch\n",
        "genart/rank/__init__.py": "",
        "genart/rank/clip.py": "from ..types import *\n",  # relative, fine
        "genart/generate/__init__.py": textwrap.dedent("""\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from genart.rank import clip  # never runs: not an edge
            def make():
                import importlib
                importlib.import_module("genart.cli")  # upward, by a literal name
                from genart.pipeline import _helper   # upward, and a private name
                from genart import rank               # a sibling stage, function-local
                import sqlalchemy
            """),
        "genart/store/__init__.py": "import sqlalchemy\n",
        "app/__init__.py": "from genart.rank.clip import x\n",
    })
    edges, external = collect_edges(tmp_path)
    keys = {(e.source, e.target) for e in edges}
    assert ("genart.rank.clip", "genart.types") in keys  # a relative import resolved
    assert ("genart.generate", "genart.rank.clip") not in keys  # TYPE_CHECKING skipped
    got = {v.key for v in violations(edges)}
    assert got == {
        ("genart-imports-app", "genart.cli", "app"),
        ("imports-upward", "genart.generate", "genart.pipeline"),
        ("imports-upward", "genart.generate", "genart.cli"),
        ("private-name-across-layers", "genart.generate", "genart.pipeline"),
        ("stage-imports-stage", "genart.generate", "genart.rank"),
        ("front-end-beyond-facade", "app", "genart.rank.clip"),
    }
    assert sql_outside_store(external) == {"genart.generate"}


def test_checker_finds_cycles_through_function_local_imports(tmp_path: Path) -> None:
    _write(tmp_path, {
        "genart/__init__.py": "",
        "genart/api.py": "def f():\n    from genart.batch import runner\n",
        "genart/batch/__init__.py": "",
        "genart/batch/runner.py": "def g():\n    import genart.api\n",
        "genart/pipeline.py": "import genart.api\n",
    })
    edges, _ = collect_edges(tmp_path)
    assert cycles(edges) == [frozenset({"genart.api", "genart.batch.runner"})]


if __name__ == "__main__":  # a quick look at the graph: python tests/test_layers.py
    es, ext = collect_edges(REPO)
    for v in sorted(violations(es), key=lambda v: v.key):
        print(v)
    for c in cycles(es):
        print("cycle", sorted(c))
    print("sql", sorted(sql_outside_store(ext)))
