"""Cold start: a whole new process that builds a Flask-SQLAlchemy app with ``HAVN(app, db=db)``, against the app alone.

Each figure is the wall time of one fresh ``python -c …`` process, from
spawn to exit: interpreter start, the imports, the app built. The baseline
process builds the same SQLite app with Flask and Flask-SQLAlchemy and stops
there; ours also runs ``from flask_havn import HAVN; HAVN(app, db=db)``. The
processes take turns round by round (:func:`~bench._timing.best_of_alternating`)
and each figure is the best round.

The goal is for the configuration a host runs in production (``HAVN_API_KEY``,
``HAVN_WEBHOOK_SECRET`` and ``HAVN_BASE_URL`` set, sandbox off), with
flask_havn's bytecode compiled as pip leaves it. Printed for reading: the
embedded sandbox (``HAVN_SANDBOX = True``, a second Flask app with its own
database, in memory here), and production with flask_havn compiled from its
sources in every process (``PYTHONDONTWRITEBYTECODE=1`` and no
``__pycache__``, as a checkout run that way does; the dependencies keep
their bytecode).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Mapping, Optional

from ._timing import best_of_alternating, report

#: ours / baseline, production configuration.
GOAL = 1.25

_APP = """\
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
app = Flask("coldstart")
app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", **{config!r})
db = SQLAlchemy(app)
"""
_HAVN = "from flask_havn import HAVN\nHAVN(app, db=db)\n"

#: What a host sets in production: the real HAVN's credentials and URL, no sandbox.
PRODUCTION = {"HAVN_API_KEY": "ak_live_coldstart", "HAVN_WEBHOOK_SECRET": "whsec_coldstart",
              "HAVN_BASE_URL": "https://api.havn.com"}
#: The embedded sandbox, its state in memory (no file in an instance folder).
SANDBOX = {"HAVN_SANDBOX": True, "HAVN_SANDBOX_DATABASE_URI": "sqlite://"}

#: The programs each process runs: ``python -c <program>``.
PROGRAMS: Dict[str, str] = {
    "baseline": _APP.format(config={}),
    "production": _APP.format(config=PRODUCTION) + _HAVN,
    "sandbox": _APP.format(config=SANDBOX) + _HAVN,
}

#: Where the checkout's flask_havn is importable from (the bench may run from anywhere).
_ROOT = Path(__file__).resolve().parent.parent


def _environ() -> Dict[str, str]:
    """This process's environment, the checkout first on the path, without ``HAVN_*`` (the config falls back
    to it) and without ``PYTHONDONTWRITEBYTECODE``: an installed package has its bytecode compiled (pip does
    it), so the processes must not compile flask_havn's sources every time."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("HAVN_") and key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH", "")]))
    return env


def run_program(program: str, *, cwd: str, env: Mapping[str, str]) -> None:
    """Run ``python -c program`` in a new process; raise with its stderr if it fails."""
    done = subprocess.run([sys.executable, "-c", program], cwd=cwd, env=dict(env), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the cold-start program failed ({done.returncode}):\n{program}\n{done.stderr}")


def measure(*, rounds: int, programs: Optional[Mapping[str, str]] = None) -> Dict[str, float]:
    """Seconds of a whole process for each program (default :data:`PROGRAMS`): the best of ``rounds``, taking turns.

    Every program runs once first, untimed, so no figure includes writing bytecode caches.
    """
    programs = dict(PROGRAMS if programs is None else programs)
    env = _environ()
    with tempfile.TemporaryDirectory(prefix="havn-coldstart-") as cwd:
        candidates = {name: (lambda program=program: run_program(program, cwd=cwd, env=env))
                      for name, program in programs.items()}
        if "production" in programs:
            # The same program with flask_havn compiled from its sources each time: a copy without
            # bytecode, and none written (PYTHONDONTWRITEBYTECODE, as in a checkout run that way).
            shutil.copytree(_ROOT / "flask_havn", Path(cwd, "src", "flask_havn"),
                            ignore=shutil.ignore_patterns("__pycache__"))
            uncached = dict(env, PYTHONDONTWRITEBYTECODE="1",
                            PYTHONPATH=os.pathsep.join([str(Path(cwd, "src")), env["PYTHONPATH"]]))
            candidates["production_uncached"] = lambda: run_program(programs["production"], cwd=cwd, env=uncached)
        for start in candidates.values():
            start()
        return best_of_alternating(candidates, rounds=rounds, number=1)


def run(quick: bool = False) -> Dict[str, float]:
    figures = measure(rounds=3 if quick else 21)
    print_figures(figures)
    return figures


def print_figures(figures: Mapping[str, float]) -> None:
    """The lines of :func:`run`: production against the goal, the embedded sandbox for reading."""
    report("cold start, HAVN(app, db=db) production", figures["production"], figures["baseline"],
           "Flask+SQLAlchemy app", goal=GOAL)
    report("cold start, embedded sandbox (for reading)", figures["sandbox"], figures["baseline"],
           "Flask+SQLAlchemy app")
    if "production_uncached" in figures:
        report("cold start, no bytecode (for reading)", figures["production_uncached"],
               figures["baseline"], "Flask+SQLAlchemy app")


if __name__ == "__main__":
    run("--quick" in sys.argv)
