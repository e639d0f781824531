"""The sandbox's imports: no cycle inside the package, and only flask_havn's shared bottom floor below it."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import flask_havn.sandbox.events
import flask_havn.signing
import flask_havn.webhook_testing

PACKAGE = Path(flask_havn.sandbox.events.__file__).parent
#: What the sandbox may import from flask_havn (the no-Flask layer it shares with the client).
SHARED = {"errors", "rules", "currency", "signing", "config"}


def _imports(path: Path) -> List[str]:
    """Every module a file imports, at any depth (function-level imports count too), as dotted names."""
    found: List[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = "flask_havn.sandbox" if node.level == 1 else "flask_havn"
            if node.module:
                found.append(f"{base}.{node.module}")
            else:  # "from . import x" / "from .. import config"
                found.extend(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flask_havn"):
            found.append(node.module or "")
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith("flask_havn"))
    return found


def _graph() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = "flask_havn.sandbox" if path.stem == "__init__" else f"flask_havn.sandbox.{path.stem}"
        graph[name] = set(_imports(path))
    return graph


def test_the_sandbox_imports_only_the_shared_layer_of_flask_havn() -> None:
    upward = {(module, target) for module, targets in _graph().items() for target in targets
              if not target.startswith("flask_havn.sandbox") and target.split(".")[1] not in SHARED}
    assert upward == set()


def test_no_import_cycle_inside_the_sandbox() -> None:
    full = _graph()
    # Edges inside the package; the package itself only imports lazily (module __getattr__).
    graph = {module: {t for t in targets if t in full and t != "flask_havn.sandbox"} for module, targets in full.items()}
    cycles: List[List[str]] = []
    done: Set[str] = set()

    def visit(module: str, path: List[str]) -> None:  # depth-first; a module on the path again is a cycle
        for target in sorted(graph[module]):
            if target in path:
                cycles.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(module)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert cycles == []


def test_one_event_id_generator() -> None:
    assert flask_havn.sandbox.events.new_event_id is flask_havn.signing.new_event_id
    assert flask_havn.webhook_testing.new_event_id is flask_havn.signing.new_event_id
    ids = {flask_havn.signing.new_event_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("evt_") and len(i) == 28 for i in ids)
