"""`python -m flask_havn.sandbox` and `flask havn sandbox`: real processes serving a sandbox until Ctrl-C.

These commands block by design, so they run as subprocesses; the test reads
the printed URL, talks to the sandbox with the client, then interrupts it.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from flask_havn import HAVNClient
from flask_havn.config import SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET
from flask_havn.errors import HAVNAuthError, HAVNRateLimitError

TESTS = Path(__file__).parent


def _start(args: List[str], env_extra: dict) -> Tuple[subprocess.Popen, str, List[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAVN_", "FLASK_"))}
    env.update(env_extra)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                               cwd=TESTS)
    lines: List[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        found = re.search(r"HAVN sandbox on (http://127\.0\.0\.1:\d+)", line)
        if found:
            # read the rest of the banner (four more lines)
            for _ in range(4):
                lines.append(process.stdout.readline().rstrip("\n"))
            return process, found.group(1), lines
    process.wait(10)
    pytest.fail("the sandbox never printed its URL:\n" + "\n".join(lines))


@pytest.fixture
def started() -> Iterator[list]:
    processes: list = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdout.close()


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(20)


def _exported(banner: List[str]) -> Dict[str, str]:
    """The ``export NAME=value`` lines of the banner."""
    found = (re.match(r"\s+export (HAVN_\w+)=(\S+)$", line) for line in banner)
    return {m.group(1): m.group(2) for m in found if m}


def test_python_m_sandbox_serves_with_the_development_credentials(started):
    process, url, banner = _start([sys.executable, "-m", "flask_havn.sandbox", "--port", "0", "--seed", "5"], {})
    started.append(process)
    assert _exported(banner) == {"HAVN_BASE_URL": url, "HAVN_API_KEY": SANDBOX_API_KEY,
                                 "HAVN_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET}
    with HAVNClient(api_key=SANDBOX_API_KEY, webhook_secret=SANDBOX_WEBHOOK_SECRET, base_url=url) as client:
        assert client.users.sync(email="ada@example.com", name="Ada Lee").referral_code == "HAVN-AL-001"
    assert _stop(process) == 0


def test_python_m_sandbox_reads_its_settings_from_the_environment(started):
    process, url, banner = _start([sys.executable, "-m", "flask_havn.sandbox", "--port", "0"],
                                  {"HAVN_SANDBOX_PUBLIC_URL": "http://havn.test:9", "HAVN_SANDBOX_SEED": "5",
                                   "HAVN_SANDBOX_RATE_LIMITS": '{"user_sync": 1}'})
    started.append(process)
    assert _exported(banner)["HAVN_BASE_URL"] == "http://havn.test:9"
    with HAVNClient(api_key=SANDBOX_API_KEY, webhook_secret=SANDBOX_WEBHOOK_SECRET, base_url=url,
                    max_retries=0) as client:
        assert client.users.sync(email="ada@example.com", name="Ada Lee").referral_code == "HAVN-AL-001"
        with pytest.raises(HAVNRateLimitError):
            client.users.sync(email="bo@example.com", name="Bo")
    assert _stop(process) == 0


def test_flask_havn_sandbox_makes_up_credentials_and_never_uses_the_apps_own(started):
    flask = str(Path(sys.executable).with_name("flask"))
    process, url, banner = _start([flask, "--app", "_cli_host_app", "havn", "sandbox", "--port", "0"], {})
    started.append(process)
    text = "\n".join(banner)
    assert "host-own-key" not in text and "host-own-secret" not in text
    exported = _exported(banner)
    assert exported["HAVN_BASE_URL"] == url
    assert exported["HAVN_API_KEY"].startswith("sandbox-key-") and len(exported["HAVN_API_KEY"]) > 30
    assert exported["HAVN_WEBHOOK_SECRET"].startswith("sandbox-secret-")
    assert SANDBOX_WEBHOOK_SECRET not in exported.values()
    with HAVNClient(api_key=exported["HAVN_API_KEY"], webhook_secret=exported["HAVN_WEBHOOK_SECRET"],
                    base_url=url) as client:
        assert client.users.sync(email="bo@example.com", name="Bo").success
    for key, secret in (("host-own-key", "host-own-secret"), (SANDBOX_API_KEY, SANDBOX_WEBHOOK_SECRET)):
        with HAVNClient(api_key=key, webhook_secret=secret, base_url=url, max_retries=0) as client:
            with pytest.raises(HAVNAuthError):
                client.users.sync(email="bo@example.com", name="Bo")
    assert _stop(process) == 0


def test_two_runs_get_different_credentials(started):
    flask = str(Path(sys.executable).with_name("flask"))
    runs = [_start([flask, "--app", "_cli_host_app", "havn", "sandbox", "--port", "0"], {}) for _ in range(2)]
    started.extend(process for process, _, _ in runs)
    first, second = (_exported(banner) for _, _, banner in runs)
    assert first["HAVN_API_KEY"] != second["HAVN_API_KEY"]
    assert first["HAVN_WEBHOOK_SECRET"] != second["HAVN_WEBHOOK_SECRET"]


def test_flask_havn_sandbox_uses_the_apps_credentials_only_when_asked_and_warns(started):
    flask = str(Path(sys.executable).with_name("flask"))
    process, url, banner = _start([flask, "--app", "_cli_host_app", "havn", "sandbox", "--port", "0",
                                   "--use-app-credentials"], {})
    started.append(process)
    text = "\n".join(banner)
    assert "host-own-key" not in text and "host-own-secret" not in text
    assert "warning: this sandbox accepts and signs with the app's own HAVN_API_KEY" in text
    assert "Never do this with production credentials" in text
    assert "export HAVN_API_KEY=(your HAVN_API_KEY)" in text
    assert "export HAVN_WEBHOOK_SECRET=(your HAVN_WEBHOOK_SECRET)" in text
    with HAVNClient(api_key="host-own-key", webhook_secret="host-own-secret", base_url=url) as client:
        assert client.users.sync(email="bo@example.com", name="Bo").success
    assert _stop(process) == 0


def test_flask_havn_sandbox_help_lists_its_options():
    flask = str(Path(sys.executable).with_name("flask"))
    result = subprocess.run([flask, "--app", "_cli_host_app", "havn", "sandbox", "--help"], cwd=TESTS,
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if not k.startswith("HAVN_")})
    assert result.returncode == 0
    for option in ("--host", "--port", "--database", "--webhook-url", "--seed", "--public-url", "--allowed-host",
                   "--use-app-credentials", "reset"):
        assert option in result.stdout
