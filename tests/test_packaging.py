"""Packaging promises: Python 3.9 syntax, py.typed shipped, public names importable, release metadata.

Building the sdist and wheel and smoke-testing the installed wheel is
``make dist`` (.ci/package.sh), which CI runs; these tests check the files it
builds from.
"""
from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path
from typing import List

import pytest

import flask_havn

ROOT = Path(__file__).resolve().parent.parent
#: Where the documentation (docs/) is published; a placeholder until the site exists.
DOCS_URL = "https://flask-havn.readthedocs.io/"
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


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return config


def _lines(value: str) -> List[str]:
    return [line.strip() for line in value.strip().splitlines() if line.strip()]


def test_py_typed_is_shipped_and_lower_bounds_only():
    assert ROOT.joinpath("flask_havn", "py.typed").exists()
    config = _setup_cfg()
    assert "py.typed" in config["options.package_data"]["flask_havn"]
    for requirement in config["options"]["install_requires"].split():
        assert "<" not in requirement and "==" not in requirement


def test_public_api_is_importable():
    for name in flask_havn.__all__:
        assert getattr(flask_havn, name) is not None


def test_the_license_file_is_the_declared_license():
    metadata = _setup_cfg()["metadata"]
    assert (metadata["license"], metadata["license_files"]) == ("BSD-3-Clause", "LICENSE")
    assert "License :: OSI Approved :: BSD License" in _lines(metadata["classifiers"])
    text = ROOT.joinpath("LICENSE").read_text(encoding="utf-8")
    assert text.startswith("BSD 3-Clause License\n")
    assert re.search(r"^Copyright \(c\) \d{4}, flask_havn contributors$", text, re.MULTILINE)
    assert "3. Neither the name of the copyright holder nor the names of its" in text
    assert (metadata["author"], metadata["maintainer"]) == ("flask_havn contributors", "flask_havn contributors")


def test_supported_pythons_agree_in_classifiers_python_requires_and_the_version_runs():
    config = _setup_cfg()
    versions = [tuple(int(part) for part in c.rsplit(" ", 1)[1].split("."))
                for c in _lines(config["metadata"]["classifiers"])
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions == [(3, minor) for minor in range(9, 14)]  # 3.9 … 3.13, none missing
    assert config["options"]["python_requires"] == ">=3.9"
    makefile = ROOT.joinpath("Makefile").read_text(encoding="utf-8")
    assert re.search(r"^PY_OLDEST \?= 3\.9$", makefile, re.MULTILINE)  # CI tests the oldest …
    assert re.search(r"^PY_NEWEST \?= 3\.13$", makefile, re.MULTILINE)  # … and the newest
    assert {"Development Status :: 3 - Alpha", "Framework :: Flask", "Typing :: Typed",
            "Topic :: Internet :: WWW/HTTP :: Dynamic Content"} <= set(_lines(config["metadata"]["classifiers"]))


def test_project_urls_share_one_base():
    metadata = _setup_cfg()["metadata"]
    urls = dict(line.split(" = ", 1) for line in _lines(metadata["project_urls"]))
    assert sorted(urls) == ["Changes", "Documentation", "Issue Tracker", "Source"]
    assert urls.pop("Documentation") == DOCS_URL  # the documentation site has a host of its own
    assert all(url.startswith(metadata["url"]) for url in urls.values()), urls
    assert metadata["keywords"] and "flask" in metadata["keywords"]


def test_the_readme_reads_well_on_a_package_index():
    text = ROOT.joinpath("README.rst").read_text(encoding="utf-8")
    # Not on the index yet: no command line tells people to install it from there.
    assert not re.search(r"^\s*pip install flask-havn\b", text, re.MULTILINE)
    assert "pip install dist/flask_havn-*.whl" in text
    # Links, images and includes point outside the repository (a relative one is broken on the index).
    targets = re.findall(r"`[^`<]*<([^>]+)>`__?", text) + re.findall(r"^\.\. _[^:]+: (\S+)", text, re.MULTILINE)
    directives = re.findall(r"^\.\. (?:image|figure|include|literalinclude)::\s*(\S+)", text, re.MULTILINE)
    assert directives == []
    assert [t for t in targets if not t.startswith("https://")] == []
def test_version_lives_in_a_leaf_module_and_reaches_the_user_agent():
    from flask_havn import _version
    from flask_havn.transport import Transport

    assert flask_havn.__version__ == _version.__version__
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["version"] == "attr: flask_havn.__version__"
    with Transport(api_key="k", webhook_secret="s") as transport:
        assert transport.user_agent.startswith(f"flask-havn/{_version.__version__} ")
