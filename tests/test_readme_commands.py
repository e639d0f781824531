"""The README's commands that no other test or .ci/run step runs as written."""
from __future__ import annotations

import contextlib
import io
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict

import pytest

from example_app import create_app

README = Path(__file__).resolve().parent.parent / "README.rst"


def _code_block_after(intro: str) -> str:
    """The ``.. code-block:: python`` right after the README line ``intro``, dedented."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(intro):].split(".. code-block:: python\n\n", 1)[1]
    lines = []
    for line in after.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def test_shopeasy_in_client_conversion_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path):
    # README: HAVN_CURRENCY_CONVERSION=client HAVN_EXCHANGE_RATES='IDR=0.0000633,EUR=1.08' flask --app example_app run
    monkeypatch.setenv("HAVN_CURRENCY_CONVERSION", "client")
    monkeypatch.setenv("HAVN_EXCHANGE_RATES", "IDR=0.0000633,EUR=1.08")
    app = create_app({"HAVN_SANDBOX_WEBHOOK_URL": None}, instance_path=str(tmp_path))
    try:
        config = app.extensions["havn"].config
        assert config.sandbox is True and config.currency_conversion == "client"
        assert dict(config.exchange_rates) == {"IDR": Decimal("0.0000633"), "EUR": Decimal("1.08")}
        page = app.test_client().get("/projects")
        assert page.status_code == 200 and b"sandbox" in page.data.lower()
    finally:
        app.extensions["havn"].close()
        with app.app_context():
            app.extensions["sqlalchemy"].engines[None].dispose()


def test_the_client_example_runs_against_a_fresh_sandbox(havn_sandbox: Any) -> None:
    # README "The client": the same code, only pointed at the sandbox instead of api.havn.com.
    code = _code_block_after("``HAVNClient`` works without Flask too:")
    placeholder = 'client = HAVNClient(api_key="…", webhook_secret="…")'
    assert placeholder in code
    assert 'upline_code="HAVN-' not in code and 'referral_code="HAVN-' not in code  # codes a fresh sandbox lacks
    code = code.replace(placeholder, f'client = HAVNClient(api_key="sandbox-api-key", '
                                     f'webhook_secret="sandbox-webhook-secret", base_url="{havn_sandbox.url}")')
    scope: Dict[str, Any] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.rst (The client)", "exec"), scope)
    assert printed.getvalue() == ""  # the example prints only when HAVN refuses a call
    # What its comments promise: the codes, and the upline earning level 1 (5 % of 100.00 USD).
    assert (scope["upline_code"], scope["owner"].referral_code) == ("HAVN-MJ-001", "HAVN-OW-001")
    team = scope["team"]
    assert (team.success, team.errors, team.referral_code) == (True, [], "HAVN-OW-001")
    result = scope["result"]
    assert result.commission_distributed is True and result.total_commission == 500
