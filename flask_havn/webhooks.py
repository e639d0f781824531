"""Receiving HAVN's signed events: verify, store once, apply, send signals."""
from __future__ import annotations

from typing import Any

from flask import Flask

__all__ = ["register_webhooks"]


def register_webhooks(app: Flask, state: Any) -> None:
    """Register the webhook endpoint on ``app``."""
