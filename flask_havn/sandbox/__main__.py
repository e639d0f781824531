"""``python -m flask_havn.sandbox``: serve a HAVN sandbox over HTTP until Ctrl-C.

Options: ``--host`` (default 127.0.0.1), ``--port`` (8765), ``--database URI``
(SQLAlchemy URL; a file keeps state across restarts), ``--webhook-url URL``
(where events are POSTed), ``--seed N`` (deterministic ids), ``--public-url URL``
(the URL its links use) and ``--allowed-host NAME`` (repeatable: a Host name
answered besides loopback ones). ``HAVN_SANDBOX_*`` environment variables set
the rest; options win. It uses the public development credentials
(``sandbox-api-key`` / ``sandbox-webhook-secret``).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from .server import standalone_config

__all__ = ["main", "parse_args"]


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("a port is a number from 0 to 65535")
    return number


def parse_args(argv: Optional[List[str]] = None) -> Tuple[str, int, Dict[str, Any]]:
    """Turn command-line options into ``(host, port, config)`` for :func:`server.run`."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_havn.sandbox",
        description="Run a HAVN sandbox: HAVN's API, stateful, on your machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765)")
    parser.add_argument("--database", metavar="URI",
                        help='SQLAlchemy URL, e.g. "sqlite:////tmp/havn.db" (default: in memory)')
    parser.add_argument("--webhook-url", metavar="URL", help="where to POST events (default: none)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed for deterministic ids")
    parser.add_argument("--public-url", metavar="URL",
                        help="the URL the sandbox is reached at, for its links (default: http://127.0.0.1:PORT)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="a Host name to answer besides localhost/127.0.0.1/[::1] (repeatable)")
    args = parser.parse_args(argv)
    config = standalone_config(database=args.database, webhook_url=args.webhook_url, seed=args.seed,
                               public_url=args.public_url, allowed_hosts=args.allowed_host)
    return args.host, args.port, config


def main(argv: Optional[List[str]] = None) -> int:
    """Parse options and serve until interrupted (``HAVN_SANDBOX_*`` from the environment); the exit status."""
    from ..errors import HAVNConfigError
    from .server import run
    from .settings import environ_config

    host, port, config = parse_args(argv)
    try:
        run(host=host, port=port, config={**environ_config(os.environ), **config})
    except HAVNConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
