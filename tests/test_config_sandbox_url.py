"""HAVN_SANDBOX with a HAVN_BASE_URL of one's own is refused, not resolved silently in the sandbox's favour."""
from __future__ import annotations

from typing import Any

import pytest

from flask_havn.config import SANDBOX_BASE_URL, HAVNConfig
from flask_havn.errors import HAVNConfigError


@pytest.mark.parametrize("config, options, environ, sources", [
    ({"HAVN_SANDBOX": True, "HAVN_BASE_URL": "http://127.0.0.1:8765"}, {}, {}, ("app.config", "app.config")),
    ({"HAVN_SANDBOX": True}, {"base_url": "http://127.0.0.1:8765"}, {}, ("app.config", "the HAVN(...) options")),
    ({}, {"sandbox": True}, {"HAVN_BASE_URL": "http://127.0.0.1:8765"}, ("the HAVN(...) options", "the environment")),
])
def test_the_combination_is_an_error_naming_both_keys_their_sources_and_both_ways_out(
        config: Any, options: Any, environ: Any, sources: Any) -> None:
    with pytest.raises(HAVNConfigError) as info:
        HAVNConfig.from_app_config(config, options, environ=environ)
    message = info.value.message
    assert f"HAVN_SANDBOX is on (from {sources[0]})" in message
    assert f"HAVN_BASE_URL = 'http://127.0.0.1:8765' (from {sources[1]})" in message
    assert "set HAVN_SANDBOX = False" in message and "remove HAVN_BASE_URL" in message


def test_either_key_alone_and_the_sandbox_s_own_url_are_fine() -> None:
    assert HAVNConfig.from_app_config({"HAVN_SANDBOX": True}, environ={}).sandbox is True
    assert HAVNConfig.from_app_config({"HAVN_BASE_URL": "http://h"}, environ={}).base_url == "http://h"
    off = HAVNConfig.from_app_config({"HAVN_SANDBOX": False, "HAVN_BASE_URL": "http://h"}, environ={})
    assert (off.sandbox, off.base_url) == (False, "http://h")
    # init_app writes the resolved settings back into app.config: reading them again is no conflict.
    again = HAVNConfig.from_app_config({"HAVN_SANDBOX": True, "HAVN_BASE_URL": SANDBOX_BASE_URL}, environ={})
    assert again.base_url == SANDBOX_BASE_URL


def test_init_app_refuses_it_before_registering_anything(make_host: Any) -> None:
    with pytest.raises(HAVNConfigError, match="ignore HAVN_BASE_URL"):
        make_host({"HAVN_SANDBOX": True, "HAVN_BASE_URL": "http://127.0.0.1:9"})
