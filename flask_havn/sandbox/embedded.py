"""The sandbox a host app embeds (``HAVN_SANDBOX = True``): its settings and where its state lives.

HAVN keeps its state, so the embedded sandbox does too: by default in a SQLite
file in the host's instance folder (:data:`DATABASE_FILE`), shared by the web
process and every ``flask havn …`` command of that app, and kept across
restarts. ``HAVN_SANDBOX_DATABASE_URI`` moves it (``"sqlite://"``: in memory,
what tests want); ``flask havn sandbox reset`` empties it.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

from flask import Flask

from .app import create_app
from .settings import ENVIRON_PREFIX, environ_config

__all__ = ["embedded_sandbox", "embedded_config", "DATABASE_FILE"]

#: File name of the embedded sandbox's state in the host's instance folder.
DATABASE_FILE = "havn-sandbox.sqlite"


def embedded_config(
    app_config: Mapping[str, Any],
    *,
    instance_path: str,
    api_key: str,
    webhook_secret: str,
    webhook_url: Optional[str],
    environ: Optional[Mapping[str, str]] = None,
) -> Dict[str, Any]:
    """The sandbox's ``HAVN_*`` keys: the host's ``HAVN_SANDBOX_*`` (else the environment's), its credentials,
    its webhook endpoint (unless set) and the instance-folder database (unless set; the folder is created)."""
    config: Dict[str, Any] = environ_config(os.environ if environ is None else environ)
    config.update((key, value) for key, value in app_config.items() if key.startswith(ENVIRON_PREFIX))
    config.update(HAVN_API_KEY=api_key, HAVN_WEBHOOK_SECRET=webhook_secret)
    if webhook_url is not None:
        config.setdefault("HAVN_SANDBOX_WEBHOOK_URL", webhook_url)
    if config.get("HAVN_SANDBOX_DATABASE_URI") is None:
        os.makedirs(instance_path, exist_ok=True)
        config["HAVN_SANDBOX_DATABASE_URI"] = "sqlite:///" + os.path.join(os.path.abspath(instance_path),
                                                                          DATABASE_FILE)
    return config


def embedded_sandbox(app_config: Mapping[str, Any], *, instance_path: str, api_key: str, webhook_secret: str,
                     webhook_url: Optional[str]) -> Flask:
    """Build the sandbox app a host embeds (see :func:`embedded_config`)."""
    return create_app(embedded_config(app_config, instance_path=instance_path, api_key=api_key,
                                      webhook_secret=webhook_secret, webhook_url=webhook_url))
