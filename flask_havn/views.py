"""The blueprint: thin JSON routes over the services."""
from __future__ import annotations

from typing import Any

from flask import Flask

__all__ = ["register_routes"]


def register_routes(app: Flask, state: Any) -> None:
    """Register the HAVN blueprint on ``app`` under ``HAVN_URL_PREFIX``."""
