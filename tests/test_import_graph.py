"""The package's modules import each other without a cycle, TYPE_CHECKING imports
included: layers below the client never know the client (as in httpx)."""

from __future__ import annotations

import ast
import functools
from collections.abc import Container
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "opentrain_async"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, modules: Container[str]) -> set[str]:
    """Every opentrain_async module ``path`` imports, relative or absolute, at any depth
    of the file (functions and ``if TYPE_CHECKING:`` blocks too).  ``from . import x``
    of a submodule counts as importing both the submodule and its package's
    ``__init__`` (stricter than grimp, which counts the submodule only): the package
    is looked in first, so a package that imports the module back is a real loop."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("opentrain_async"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("opentrain_async"):
                continue
            found.add(target)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
    return found


@functools.cache  # parsed once: the tests only read it
def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in _imports(path, name, modules) if m in modules and m != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_import_graph_has_no_cycle() -> None:
    """No module of opentrain_async reaches itself through its imports."""
    graph = import_graph()
    assert "opentrain_async._client" in graph
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """The check itself works: a made-up loop A -> B -> C -> A is reported."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_parser_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Relative, absolute, submodule and TYPE_CHECKING imports all count as edges."""
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import opentrain_async._errors\n"
        "from ._json import json_loads\n"
        "from ._pacing import Pacer\n"
        "from ._pacing import state\n"
        "if TYPE_CHECKING:\n"
        "    from ._client import OpenTrainClient\n"
    )
    modules = {
        "opentrain_async._errors",
        "opentrain_async._json",
        "opentrain_async._pacing",
        "opentrain_async._pacing.state",
        "opentrain_async._client",
    }
    assert _imports(source, "opentrain_async.mod", modules) == modules


def test_importing_a_submodule_from_its_package_counts_the_package(tmp_path: Path) -> None:
    """``from . import curve`` inside a package that imports this module back is a loop:
    the package's ``__init__`` is where ``curve`` is looked up first."""
    package = tmp_path / "pkg"
    package.mkdir()
    source = package / "backend.py"
    source.write_text("from . import curve\n")
    modules = {"opentrain_async.pkg", "opentrain_async.pkg.curve", "opentrain_async.pkg.backend"}
    found = _imports(source, "opentrain_async.pkg.backend", modules)
    assert found == {"opentrain_async.pkg", "opentrain_async.pkg.curve"}
    graph = {
        "opentrain_async.pkg": {"opentrain_async.pkg.backend"},
        "opentrain_async.pkg.backend": found,
        "opentrain_async.pkg.curve": set(),
    }
    assert _cycles(graph) == [["opentrain_async.pkg", "opentrain_async.pkg.backend"]]


def test_nothing_below_the_client_imports_it() -> None:
    """Only the facade's users (the package root, the CLI, the testing kit) import
    _client; the layers under it get callables and protocols."""
    graph = import_graph()
    users = {m for m, targets in graph.items() if "opentrain_async._client" in targets}
    above = ("opentrain_async._cli", "opentrain_async.testing")
    below = {
        m
        for m in users
        if m != "opentrain_async" and not any(m == a or m.startswith(a + ".") for a in above)
    }
    assert below == set()


def test_the_pipeline_knows_nothing_built_on_it() -> None:
    """The request pipeline is the bottom of the send path: it imports neither the
    client nor delivery, the bulk engine or the reads, which all go through it."""
    graph = import_graph()

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    above = {f"opentrain_async.{m}" for m in ("_client", "_delivery", "_bulk", "_read")}
    assert reach("opentrain_async._pipeline") & above == set()


def test_the_bulk_engine_knows_neither_the_pipeline_nor_pacing() -> None:
    """The bulk engine (``_bulk`` and its ``_bulk_*`` parts) gets a send callable and
    decides per input through its parameters: it imports neither the request pipeline
    nor the pacer, so no decision reaches them through a side channel."""
    graph = import_graph()
    engine = {m for m in graph if m.startswith("opentrain_async._bulk")}
    assert "opentrain_async._bulk" in engine
    for module in sorted(engine):
        forbidden = {
            m
            for m in graph[module]
            if m == "opentrain_async._pipeline" or m.startswith("opentrain_async._pacing")
        }
        assert forbidden == set(), module
