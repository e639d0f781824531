"""Secret redaction: whole tokens for short development keys, anywhere for real-length secrets."""
from __future__ import annotations

import json

import pytest
import requests

from flask_havn.errors import REDACTED, redact
from flask_havn.transport import error_from_response


def _response(status: int, body: bytes) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    resp.headers["Content-Type"] = "application/json"
    return resp


@pytest.mark.parametrize("text", ["monkey business", "keyboard", "the key-value store", "HAVN_API_KEY", "key_id"])
def test_a_short_key_leaves_ordinary_words_intact(text: str) -> None:
    assert redact(text, ["key", "KEY"]) == text


@pytest.mark.parametrize("text, expected", [
    ("key", REDACTED),                                      # the whole value, e.g. a header
    ("bad api key: key", "bad api ***: ***"),               # a word equal to the key is the key
    ("X-API-Key=dev refused (dev).", "X-API-Key=*** refused (***)."),
    ("'dev', \"dev\" and dev/dev", "'***', \"***\" and ***/***"),
])
def test_the_short_key_itself_is_redacted(text: str, expected: str) -> None:
    assert redact(text, ["key", "dev"]) == expected


def test_a_long_secret_is_redacted_even_glued_to_other_characters() -> None:
    secret = "ak_live_0123456789abcdef"
    assert redact(f"Bearer{secret} and api_key%3D{secret}x", [secret]) == "Bearer*** and api_key%3D***x"


def test_longer_secrets_win_and_empty_ones_are_ignored() -> None:
    assert redact("x abc-def y abc", ["abc", "abc-def"]) == "x *** y ***"
    assert redact("nothing to hide", ["", "   ", None]) == "nothing to hide"
    assert redact("key a+b. a+bc", ["a+b"]) == "key ***. a+bc"  # regex characters are literal


def test_havn_errors_with_a_short_development_key_stay_readable() -> None:
    body = json.dumps({"error": "Unauthorized", "message": "API key dev is not valid for this developer account"})
    err = error_from_response(_response(401, body.encode()), redact=("dev", "whsec"))
    assert err.message.startswith("API key *** is not valid for this developer account (HTTP 401 Unauthorized)")
    assert "Check HAVN_API_KEY and HAVN_WEBHOOK_SECRET" in err.message  # the hint is not mangled
    assert err.response == {"error": "Unauthorized", "message": "API key *** is not valid for this developer account"}
    assert " dev " not in err.message and " dev " not in repr(err)
