"""Every Python example in README.rst and docs/*.rst runs, so none can rot.

The rules, which docs/contributing.rst repeats for writers:

* a ``.. code-block:: python`` block is executed; one that defines
  ``test_…`` functions is a pytest module instead, run by pytest (in a
  subprocess, with flask_havn's plugin and its fixtures) and every test in it
  must pass;
* a ``.. code-block:: pycon`` block is a doctest: each ``>>>`` line runs and
  what it prints must match the lines below it (``...`` matches anything);
* a plain literal block (``::``) is a fragment or a shell command: shown, not run.

The blocks of one file run in order in one namespace, like a session in
``flask shell``: a tutorial builds on its earlier steps. Each file runs in a
fresh temporary folder, with no ``HAVN_*`` variable in the environment, in a
context of its own (an app context it pushes never leaks out), and the apps
and sandboxes it leaves are closed afterwards.
"""
from __future__ import annotations

import contextvars
import doctest
import os
import re
import textwrap
from pathlib import Path
from typing import Any, Dict, List, NamedTuple

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]
_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: (python|pycon)\s*$")


class Block(NamedTuple):
    """One example: where it starts in its file, its language and its dedented code."""

    line: int
    language: str
    code: str


def blocks(path: Path) -> List[Block]:
    """The ``python`` and ``pycon`` code blocks of an reStructuredText file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: List[Block] = []
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        index += 1
        if not match:
            continue
        indent = len(match.group(1))
        start = index
        body: List[str] = []
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
            index += 1
        while body and (not body[0].strip() or body[0].strip().startswith(":")):
            body.pop(0)  # options (":caption: …") and the blank line after the directive
        found.append(Block(start, match.group(2), textwrap.dedent("\n".join(body)).strip("\n") + "\n"))
    return found


_TEST_FUNCTION = re.compile(r"^def test_\w+\(", re.MULTILINE)


def _run_block(block: Block, path: Path, scope: Dict[str, Any], request: pytest.FixtureRequest) -> None:
    where = f"{path.relative_to(ROOT)}:{block.line}"
    if block.language == "python" and _TEST_FUNCTION.search(block.code):
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        module = pytester.makepyfile(**{f"test_example_{block.line}": block.code})
        result = pytester.runpytest_subprocess(str(module), "-p", "no:cacheprovider", "-W", "error")
        count = len(_TEST_FUNCTION.findall(block.code))
        if result.ret != 0 or result.parseoutcomes().get("passed") != count:
            pytest.fail(f"{where}: the example test module does not pass\n" + str(result.stdout), pytrace=False)
        return
    if block.language == "python":
        exec(compile(block.code, where, "exec"), scope)
        return
    test = doctest.DocTestParser().get_doctest(block.code, scope, where, where, block.line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: List[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    scope.update(test.globs)  # DocTest ran on a copy: what the session defined carries on to the next block
    if runner.failures:
        pytest.fail(f"{where}: the pycon example does not print what it shows\n" + "".join(report), pytrace=False)


def _close_what_it_left(scope: Dict[str, Any]) -> None:
    """Stop sandboxes and close the apps (their HAVN state, embedded sandbox and database engines)."""
    from flask import Flask

    from flask_havn.sandbox.server import SandboxServer

    for value in list(scope.values()):
        if isinstance(value, SandboxServer):
            value.stop()
        elif isinstance(value, Flask):
            state = value.extensions.get("havn")
            if state is not None:
                state.close()
            database = value.extensions.get("sqlalchemy")
            if database is not None:
                with value.app_context():
                    for engine in database.engines.values():
                        engine.dispose()


def _examples() -> List[Any]:
    return [pytest.param(path, id=str(path.relative_to(ROOT))) for path in FILES if blocks(path)]


@pytest.mark.parametrize("path", _examples())
def test_the_examples_of_a_file_run_in_order(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             request: pytest.FixtureRequest) -> None:
    for key in list(os.environ):
        if key.startswith("HAVN_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    scope: Dict[str, Any] = {"__name__": "docs_example"}

    def run_all() -> None:
        try:
            for block in blocks(path):
                _run_block(block, path, scope, request)
        finally:
            _close_what_it_left(scope)

    contextvars.copy_context().run(run_all)


def test_the_tutorial_and_the_readme_are_examples_that_run() -> None:
    # A page of prose can lose its examples by a change of markup (``::`` instead of a code-block);
    # these pages must keep theirs.
    tutorial = blocks(ROOT / "docs" / "tutorial.rst")
    assert len(tutorial) >= 10 and sum(b.language == "pycon" for b in tutorial) >= 6
    assert [b.language for b in blocks(ROOT / "README.rst")] == ["python"]


def test_the_block_reader_sees_options_nesting_and_the_end_of_a_block(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(textwrap.dedent("""\
        Title
        =====

        .. code-block:: python
           :caption: one

           a = 1
           if a:
               a += 1

        - item

          .. code-block:: pycon

             >>> a
             2

        ::

            not = run
        .. code-block:: console

           $ flask havn status
        """), encoding="utf-8")
    assert blocks(page) == [Block(4, "python", "a = 1\nif a:\n    a += 1\n"), Block(13, "pycon", ">>> a\n2\n")]
