"""``python -m flask_havn.sandbox``: serve a HAVN sandbox over HTTP until Ctrl-C.

Options: ``--host`` (default 127.0.0.1), ``--port`` (8765), ``--database URI``
(SQLAlchemy URL; a file keeps state across restarts), ``--webhook-url URL``
(where events are POSTed) and ``--seed N`` (deterministic ids).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Tuple

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
    args = parser.parse_args(argv)
    config: Dict[str, Any] = {}
    if args.database:
        config["HAVN_SANDBOX_DATABASE_URI"] = args.database
    if args.webhook_url:
        config["HAVN_SANDBOX_WEBHOOK_URL"] = args.webhook_url
    if args.seed is not None:
        config["HAVN_SANDBOX_SEED"] = args.seed
    return args.host, args.port, config


def main(argv: Optional[List[str]] = None) -> int:
    """Parse options and serve until interrupted; return the exit status."""
    from ..errors import HAVNConfigError
    from .server import run

    host, port, config = parse_args(argv)
    try:
        run(host=host, port=port, config=config)
    except HAVNConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
