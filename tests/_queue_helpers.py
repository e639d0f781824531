"""Helpers of the task-queue tests: the Redis they need, real worker processes, what sits in a queue."""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import pytest

#: Read at import: the suite's autouse fixture removes HAVN_* variables from the environment of each test.
REDIS_URL: Optional[str] = os.environ.get("HAVN_TEST_REDIS_URL")
POSTGRES_URL: Optional[str] = os.environ.get("HAVN_TEST_POSTGRES_URL")
TESTS = Path(__file__).resolve().parent

needs_redis = pytest.mark.skipif(
    REDIS_URL is None,
    reason="Redis not configured: run `eval \"$(bash .ci/redis.sh)\"` (installs Debian's redis-server, starts a "
           "private one on 127.0.0.1:63790, exports HAVN_TEST_REDIS_URL) and pip install celery redis rq")
needs_postgres = pytest.mark.skipif(
    POSTGRES_URL is None,
    reason="PostgreSQL not configured: run `eval \"$(.ci/postgres.sh)\"` (exports HAVN_TEST_POSTGRES_URL)")


def unique_queue(engine: str) -> str:
    """A queue name no other test run uses (the Redis may be shared)."""
    return f"havn-test-{engine}-{uuid.uuid4().hex[:10]}"


def wait_for(predicate: Callable[[], bool], *, seconds: float, what: str,
             processes: "Optional[List[WorkerProcess]]" = None) -> None:
    """Poll ``predicate`` every 50 ms; fail saying ``what`` (and the workers' logs) if it is not true in time."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            logs = "\n".join(p.log_tail() for p in processes or [])
            raise AssertionError(f"{what}: not done within {seconds:g}s\n{logs}")
        time.sleep(0.05)


class WorkerProcess:
    """A real worker process in its own process group (so SIGKILL takes its children too); logs to a file."""

    def __init__(self, argv: List[str], env: Mapping[str, str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self._file = open(log, "ab")
        self.proc = subprocess.Popen(argv, env=dict(env), cwd=str(TESTS), stdin=subprocess.DEVNULL,
                                     stdout=self._file, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the whole process group (no warm shutdown: a crash) and reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - it just exited
                pass
        self.proc.wait(timeout=30)
        # Children of the group may outlive the leader for a moment; make sure they are gone too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._file.close()

    def wait(self, seconds: float) -> int:
        """Wait for the process to exit by itself (a burst worker); its exit code."""
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.argv[:4]} did not exit within {seconds:g}s\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.log.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def worker_env(config: Mapping[str, Any], celery: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """The environment of a worker process: the host's settings as JSON, the tests folder importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAVN_")}
    env["QUEUE_HOST_CONFIG"] = json.dumps(dict(config))
    if celery is not None:
        env["QUEUE_HOST_CELERY"] = json.dumps(dict(celery))
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def celery_worker(config: Mapping[str, Any], broker: str, log: Path, *, sweep_every: float,
                  concurrency: int = 2) -> WorkerProcess:
    """``celery worker`` (prefork) on the host's queue, with an embedded beat for the sweep."""
    argv = [sys.executable, "-m", "celery", "-A", "_queue_host:celery_app", "worker", "--pool=prefork",
            f"--concurrency={concurrency}", "-Q", str(config["HAVN_QUEUE_NAME"]), "--without-heartbeat",
            "--without-mingle", "--without-gossip", "-l", "warning", "-n", f"{uuid.uuid4().hex[:8]}@%h",
            "-B", "-s", str(log.with_suffix(".beat"))]
    return WorkerProcess(argv, worker_env(config, {"broker": broker, "sweep_every": sweep_every}), log)


def rq_worker(config: Mapping[str, Any], log: Path, *, sweep_every: float = 0.0, burst: bool = False,
              simple: bool = False) -> WorkerProcess:
    """``flask havn rq-worker`` on the host's queue."""
    argv = [sys.executable, "-m", "flask", "--app", "_queue_host:app", "havn", "rq-worker",
            f"--sweep-every={sweep_every}", "--log-level=WARNING"]
    if burst:
        argv.append("--burst")
    if simple:
        argv.append("--simple")
    return WorkerProcess(argv, worker_env(config), log)


def redis_client(url: str) -> Any:
    from redis import Redis

    return Redis.from_url(url)


def queued_payment_ids(engine: str, url: str, queue: str) -> List[int]:
    """Payment ids of the delivery tasks waiting in ``queue`` (not the scheduled ones), oldest first."""
    client = redis_client(url)
    try:
        if engine == "rq":
            from rq import Queue

            return [int(job.args[0]) for job in Queue(queue, connection=client).get_jobs()
                    if job.func_name.endswith("deliver_job")]
        ids: List[int] = []
        # Kombu's Redis transport keeps a queue as a list named after it; LPUSH, so the oldest is last.
        for raw in reversed(client.lrange(queue, 0, -1)):
            message = json.loads(raw)
            if message["headers"]["task"] != "flask_havn.deliver":
                continue
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            ids.append(int(args[0]))
        return ids
    finally:
        client.close()


def forget_queue(url: str, queue: str) -> None:
    """Delete the keys a test's queue left in a shared Redis (best effort)."""
    client = redis_client(url)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a loopback port, to take down and bring back (a broker outage)."""

    def __init__(self, folder: Path, *, password: str) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise AssertionError("redis-server is not installed although HAVN_TEST_REDIS_URL is set: run "
                                 "`bash .ci/redis.sh`")
        self.binary = binary
        self.folder = folder
        self.password = password
        self.port = free_port()
        self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
             "--save", "", "--appendonly", "no", "--requirepass", self.password],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        client = redis_client(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except Exception:
                return False

        try:
            wait_for(answers, seconds=20, what=f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.proc = None
