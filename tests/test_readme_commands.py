"""Commands the README and the docs show as shell lines that no other test or .ci/run step runs as written.

Their Python examples are run by tests/test_docs_examples.py.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from example_app import create_app

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_shopeasy_in_client_conversion_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path):
    # docs/example_app.rst: HAVN_CURRENCY_CONVERSION=client HAVN_EXCHANGE_RATES='IDR=0.0000633,EUR=1.08' flask --app …
    command = "HAVN_CURRENCY_CONVERSION=client HAVN_EXCHANGE_RATES='IDR=0.0000633,EUR=1.08'"
    assert command in DOCS.joinpath("example_app.rst").read_text(encoding="utf-8")
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
