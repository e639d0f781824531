"""Run every benchmark: ``python -m bench`` (``--quick`` for a smoke run, as CI does)."""
from __future__ import annotations

import sys

from . import bench_outbox, bench_queue, bench_transport, bench_webhooks


def main(argv: list) -> int:
    quick = "--quick" in argv
    print("flask_havn benchmarks (ratio = ours / baseline, measured in this run; below 1.0 is faster)")
    bench_transport.run(quick)
    bench_webhooks.run(quick)
    bench_outbox.run(quick)
    bench_queue.run(quick)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
