"""pytest plugin and test helpers for apps that use flask_havn (entry point ``havn``)."""
from __future__ import annotations
