"""The package's import graph stays layered and acyclic (read from the source with ast, not by importing).

Layers, lowest first:

* shared: the HAVN client, transport, signing, currency, rules, results, errors,
  config and models — no Flask, nothing above them;
* sandbox: the emulator — only the shared layer and itself;
* glue: the extension, services, outbox, views, webhooks, CLI, testing helpers.

Every import counts, also one inside a function (a lazy import is still an
edge); only ``if TYPE_CHECKING:`` blocks are left out (they never run).
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Dict, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parent.parent / "flask_havn"
SHARED = {"flask_havn._version", "flask_havn._deadline", "flask_havn.errors", "flask_havn.signing", "flask_havn.currency",
          "flask_havn.rules", "flask_havn.results", "flask_havn.transport", "flask_havn.client",
          "flask_havn.config", "flask_havn.models", "flask_havn.redact"}
#: The part of the shared layer the sandbox may use (it is HAVN's server side: no client, no host models).
SANDBOX_MAY_IMPORT = {"flask_havn.errors", "flask_havn.rules", "flask_havn.currency", "flask_havn.signing",
                      "flask_havn.config"}
THIRD_PARTY_WEB = ("flask", "werkzeug", "flask_sqlalchemy")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> List[str]:
    """Every module ``path`` imports (absolute names), skipping ``if TYPE_CHECKING`` blocks."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: List[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from . import rules" imports the module flask_havn.rules, not the package root:
            # the caller keeps a "pkg.name" candidate when it is a module, else "pkg".
            found.extend(f"{target}:{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


_MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(target: str) -> str:
    """``"pkg:name"`` → ``pkg.name`` if that is a module of ours, else ``pkg``; a plain name as is."""
    base, _, name = target.partition(":")
    return f"{base}.{name}" if name and f"{base}.{name}" in _MODULES else base


@functools.lru_cache(maxsize=None)
def _graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for name, path in _MODULES.items():
        graph[name] = {t for t in map(_resolve, _imports(path)) if t in _MODULES and t != name}
    return graph


def _layer(module: str) -> int:
    if module in SHARED:
        return 0
    if module.startswith("flask_havn.sandbox"):
        return 1
    return 2


def test_the_shared_layer_imports_no_flask_and_nothing_above_it() -> None:
    problems: List[Tuple[str, str]] = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name not in SHARED:
            continue
        for target in map(_resolve, _imports(path)):
            if target.split(".")[0] in THIRD_PARTY_WEB:
                problems.append((name, target))
            elif target in _MODULES and _layer(target) > 0:
                problems.append((name, target))
    assert problems == []


def test_the_sandbox_imports_only_its_part_of_the_shared_layer() -> None:
    graph = _graph()
    outside = [(m, t) for m, targets in graph.items() if m.startswith("flask_havn.sandbox")
               for t in targets if not t.startswith("flask_havn.sandbox") and t not in SANDBOX_MAY_IMPORT]
    assert outside == []


def test_one_event_id_generator() -> None:
    import flask_havn.sandbox.events
    import flask_havn.signing
    import flask_havn.webhook_testing

    assert flask_havn.sandbox.events.new_event_id is flask_havn.signing.new_event_id
    assert flask_havn.webhook_testing.new_event_id is flask_havn.signing.new_event_id
    ids = {flask_havn.signing.new_event_id() for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("evt_") and len(i) == 28 for i in ids)


def test_no_module_imports_the_package_root_or_takes_part_in_a_cycle() -> None:
    graph = _graph()
    root_importers = sorted(m for m, targets in graph.items() if "flask_havn" in targets)
    assert root_importers == []
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}
    stack: List[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module)
    assert cycles == []


def test_the_walker_sees_lazy_imports_and_skips_type_checking_blocks() -> None:
    graph = _graph()
    assert "flask_havn.sandbox.adapter" in graph["flask_havn.extension"]  # imported inside init_app
    assert "flask_havn.projects" not in graph["flask_havn.extension"]  # only under TYPE_CHECKING
