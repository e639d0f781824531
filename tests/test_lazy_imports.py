"""What ``HAVN(app, db=db)`` leaves for later: no HTTP library, no command modules, no services.

A web process pays at start only for what it registers; ``requests`` comes with
the first API call, the ``flask havn`` commands with the first command, the
services with their first use (``bench/bench_coldstart.py`` times the whole
start). Each check runs in a new interpreter, whose ``sys.modules`` is read.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent

_APP = """
import json, sys
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_havn import HAVN

app = Flask("lazy")
app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", HAVN_API_KEY="ak_lazy", HAVN_WEBHOOK_SECRET="whsec_lazy",
                  HAVN_BASE_URL="https://api.havn.com")
db = SQLAlchemy(app)
havn = HAVN(app, db=db)
loaded = {"init": sorted(sys.modules)}
"""


def _modules(then: str = "") -> Dict[str, List[str]]:
    """The modules loaded after ``HAVN(app, db=db)`` ("init"), and after ``then`` runs ("then")."""
    program = _APP + then + '\nloaded["then"] = sorted(sys.modules)\nprint(json.dumps(loaded))\n'
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAVN_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", program], cwd=str(ROOT), env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_init_app_imports_neither_requests_nor_the_commands_nor_the_services() -> None:
    init = _modules()["init"]
    assert "flask_havn.extension" in init and "flask_havn.views" in init  # the check sees our modules
    assert [m for m in init if m.split(".")[0] in ("requests", "urllib3")] == []
    assert [m for m in init if m.startswith("flask_havn.cli.")] == []
    assert [m for m in init if m.startswith("flask_havn.sandbox")] == []
    later = ("flask_havn.client", "flask_havn.results", "flask_havn.outbox", "flask_havn.payments",
             "flask_havn.projects")
    assert [m for m in init if m.startswith(later)] == []


def test_the_first_use_imports_what_it_needs() -> None:
    loaded = _modules("""
names = sorted(app.cli.commands["havn"].commands)
assert "deliver" in names and "webhooks" in names, names
with app.app_context():
    assert havn.client.transport.session is not None and havn.payments is not None
""")
    assert "requests" not in loaded["init"] and "requests" in loaded["then"]
    assert "flask_havn.cli.projects" in loaded["then"] and "flask_havn.sandbox.commands" in loaded["then"]
    assert {"flask_havn.client", "flask_havn.payments", "flask_havn.outbox"} <= set(loaded["then"])
