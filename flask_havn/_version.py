"""The package version, in a leaf module so low floors (the transport) can read it without importing the root."""
from __future__ import annotations

__version__ = "0.1.0.dev0"
