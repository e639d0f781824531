"""Run every benchmark: ``python -m bench`` (``--quick``: the smoke run CI does, ``make bench BENCH_ARGS=--quick``)."""
from __future__ import annotations

import sys

from . import (bench_bulk, bench_client, bench_coldstart, bench_drain, bench_ingest, bench_outbox, bench_queue,
               bench_transport, bench_webhooks)


def main(argv: list) -> int:
    quick = "--quick" in argv
    print("flask_havn benchmarks (ratio = ours / baseline, measured in this run; below 1.0 is faster)"
          + (" — quick mode: too few rounds for the figures to mean much" if quick else ""))
    bench_transport.run(quick)
    bench_webhooks.run(quick)
    bench_ingest.run(quick)
    bench_outbox.run(quick)
    bench_drain.run(quick)
    bench_client.run(quick)
    bench_bulk.run(quick)
    bench_queue.run(quick)
    bench_coldstart.run(quick)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
