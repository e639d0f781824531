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
