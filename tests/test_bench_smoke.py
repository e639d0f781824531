"""Every benchmark in bench/ runs at a tiny size, so none rots (figures are checked for shape, never for speed)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _queue_helpers import POSTGRES_URL, REDIS_URL  # noqa: E402  (read at import: the tests' environment has no HAVN_*)
from bench import bench_bulk, bench_client, bench_ingest, bench_transport, bench_webhooks  # noqa: E402


def _seconds(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_transactions_send_benchmark_runs(capsys):
    figures = bench_client.measure(number=2, rounds=1)
    expected = {"ours", "raw"} | ({"sdk"} if bench_client.SDK_PATH.is_dir() else set())
    assert set(figures) == expected
    assert all(_seconds(v) for v in figures.values())
    bench_client.print_figures(figures)
    lines = capsys.readouterr().out.splitlines()
    assert "raw Session.post" in lines[0] and "goal ≤ 1.05" in lines[0]
    assert len(lines) == 2 and ("official SDK" in lines[1] or "skipped" in lines[1])


def test_a_missing_official_sdk_is_skipped_not_a_crash(capsys):
    bench_client.print_figures({"ours": 1e-4, "raw": 2e-4})
    assert "official SDK: skipped" in capsys.readouterr().out.splitlines()[1]


def test_the_wire_request_a_baseline_replays_is_ours():
    body, headers = bench_client.wire_request("http://havn.invalid")
    assert body.startswith(b'{"amount":8000,"currency":"USD"')
    assert headers["Idempotency-Key"].startswith("txn-") and len(headers["X-Signature"]) == 64


def test_bulk_sync_benchmark_runs(capsys):
    count = 2 * bench_bulk.BATCH
    figures = bench_bulk.measure(count, rounds=1)
    for answer in ("fixed", "full"):
        assert set(figures[answer]) == {"list", "stream", "list_read", "raw", "raw_decoded"}
        assert all(_seconds(v) for v in figures[answer].values())
    assert set(figures["memory"]) == {"list", "stream", "raw_keep_all", "raw_keep_none"}
    assert all(v > 0 for v in figures["memory"].values())
    capsys.readouterr()  # drop anything measuring printed
    bench_bulk.print_figures(count, figures)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and sum("goal ≤ 1.15" in line for line in lines) == 2
    assert "2 raw posts" in lines[0] and "peak memory" in lines[-1]


def test_sandbox_size_answer_is_a_real_sandbox_answer():
    import json

    answer = json.loads(bench_bulk.sandbox_answer(3))
    assert answer["summary"]["total"] == 3 and len(answer["results"]) == 3
    assert {"user", "associate", "referral_code"} <= set(answer["results"][0])


@pytest.mark.parametrize("module", [bench_transport, bench_webhooks])
def test_older_benchmarks_still_run(module, capsys):
    ours, baseline = module.run(quick=True)
    assert _seconds(ours) and _seconds(baseline)
    assert "ratio" in capsys.readouterr().out


def test_webhook_ingest_benchmark_runs(capsys):
    figures = bench_ingest.measure(number=3, rounds=1)
    assert set(figures) == {"matched", "unknown", "first news"}
    for times in figures.values():
        assert set(times) == {"ours", "bare"} and all(_seconds(value) for value in times.values())
    bench_ingest.print_figures(figures)
    out = capsys.readouterr().out
    assert "webhook ingest, matched payment" in out and "goal ≥ 0.75" in out
    handed = bench_ingest.measure(number=2, rounds=1, cases=("matched",), with_receiver=True)
    assert set(handed) == {"matched"} and all(_seconds(value) for value in handed["matched"].values())


def test_cold_start_benchmark_runs(capsys):
    from bench import bench_coldstart

    figures = bench_coldstart.measure(rounds=1)
    assert set(figures) == {"baseline", "production", "sandbox", "production_uncached"}
    assert all(_seconds(v) for v in figures.values())
    bench_coldstart.print_figures(figures)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "goal ≤ 1.25" in lines[0] and "Flask+SQLAlchemy app" in lines[0]
    assert "embedded sandbox" in lines[1] and "no bytecode" in lines[2]


def test_a_failing_cold_start_program_is_an_error_not_a_figure():
    from bench import bench_coldstart

    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        bench_coldstart.measure(rounds=1, programs={"baseline": "1 / 0"})


def test_drain_benchmark_runs(tmp_path, capsys):
    from bench import bench_drain

    proc, url = bench_drain._start_sandbox()
    try:
        bench_drain._measure(f"sqlite:///{tmp_path}/drain.sqlite", url, 12, 1, "SQLite")
    finally:
        bench_drain._stop_sandbox(proc)
    out = capsys.readouterr().out
    assert "drain 12 at +20 ms, SQLite" in out and "speed-up" in out and "goal ≥ 3×" in out


def test_long_outbox_benchmark_runs(tmp_path):
    from bench import bench_outbox

    count = 2 * bench_outbox.WINDOW
    app = bench_outbox._host(str(tmp_path), count)
    windows = bench_outbox._timed_pass(app, bench_outbox._cursor_pass(app), count)
    assert len(windows) == 2 and all(_seconds(value) for value in windows)


def test_queue_benchmark_runs(capsys):
    """Celery workers on Redis and PostgreSQL, as CI has them (skipped elsewhere; CI refuses skips)."""
    if REDIS_URL is None or POSTGRES_URL is None:
        pytest.skip("needs HAVN_TEST_REDIS_URL and HAVN_TEST_POSTGRES_URL (.ci/redis.sh, .ci/postgres.sh)")
    from bench import bench_queue

    bench_queue.run(True, redis_url=REDIS_URL, database=POSTGRES_URL, count=8, rounds=1)
    out = capsys.readouterr().out
    assert "queue: drain via Celery x4 vs built-in x4 (8)" in out and "ratio" in out and "goal ≤ 1.5" in out
