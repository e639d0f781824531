"""Packaging promises: Python 3.9 syntax, py.typed shipped, public names importable."""
from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

import flask_havn

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.joinpath("flask_havn").rglob("*.py"), *ROOT.joinpath("example_app").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sources_parse_as_python_3_9(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
    code = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if not code:
        return  # a docstring-only module
    # Annotations such as `Optional[int]` or `dict[str, int]` stay unevaluated on 3.9 only with this import.
    assert isinstance(code[0], ast.ImportFrom) and code[0].module == "__future__", \
        f"{path.name}: start with `from __future__ import annotations`"


def test_py_typed_is_shipped_and_lower_bounds_only():
    assert ROOT.joinpath("flask_havn", "py.typed").exists()
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "py.typed" in config["options.package_data"]["flask_havn"]
    for requirement in config["options"]["install_requires"].split():
        assert "<" not in requirement and "==" not in requirement


def test_public_api_is_importable():
    for name in flask_havn.__all__:
        assert getattr(flask_havn, name) is not None


#: The no-Flask client floor: none of these may import the package root (an upward edge).
CLIENT_FLOOR = ("_version", "_deadline", "errors", "rules", "currency", "signing", "transport", "results", "client")


def _is_submodule(name: str) -> bool:
    package = ROOT / "flask_havn"
    return package.joinpath(f"{name}.py").exists() or package.joinpath(name, "__init__.py").exists()


@pytest.mark.parametrize("module", CLIENT_FLOOR)
def test_client_floor_never_imports_the_package_root(module: str):
    path = ROOT / "flask_havn" / f"{module}.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            # `from . import rules` names a sibling module; `from . import __version__` reads the root.
            names = [alias.name for alias in node.names]
            from_root = (node.level == 1 and node.module is None) or (node.level == 0 and node.module == "flask_havn")
            upward = from_root and not all(_is_submodule(name) for name in names)
            assert not upward, f"{path.name}:{node.lineno} imports the package root; import the leaf module instead"
        elif isinstance(node, ast.Import):
            assert "flask_havn" not in [alias.name for alias in node.names], f"{path.name}:{node.lineno}"


def test_version_lives_in_a_leaf_module_and_reaches_the_user_agent():
    from flask_havn import _version
    from flask_havn.transport import Transport

    assert flask_havn.__version__ == _version.__version__
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["version"] == "attr: flask_havn.__version__"
    with Transport(api_key="k", webhook_secret="s") as transport:
        assert transport.user_agent.startswith(f"flask-havn/{_version.__version__} ")
