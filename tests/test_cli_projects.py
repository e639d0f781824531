"""``flask havn`` commands for projects, members and delivery (app.test_cli_runner, in-process sandbox)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.wrappers import Request, Response

from _projects_helpers import FAST_RETRY, dump, http_config, quiet, record_many, sandbox_of, synced_chain


@pytest.fixture
def make_host(make_host: Any) -> Any:
    return quiet(make_host)


def _run(host: Any, *args: str) -> Any:
    return host.app.test_cli_runner().invoke(args=["havn", *args])


@pytest.mark.parametrize("command", ["init-db", "sync-project", "sync-members", "deliver", "status"])
def test_every_command_has_help(make_host: Any, command: str) -> None:
    result = _run(make_host(), command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_init_db_creates_only_the_havn_tables(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        host.db.drop_all()
        host.db.session.execute(sa.text("CREATE TABLE host_things (id INTEGER PRIMARY KEY)"))
        host.db.session.commit()
    result = _run(host, "init-db")
    assert result.exit_code == 0, result.output
    assert "havn_payments" in result.output
    with host.app.app_context():
        tables = set(sa.inspect(host.db.engine).get_table_names())
    assert {"havn_projects", "havn_project_members", "havn_payments", "havn_webhook_events"} <= tables
    assert _run(host, "init-db").exit_code == 0  # idempotent


def test_sync_project_prints_the_code(make_host: Any) -> None:
    host = make_host()
    with host.app.app_context():
        project_id = host.havn.create_project("Alpha").id
    result = _run(host, "sync-project", str(project_id), "--email", "a@alpha.example", "--name", "Ann Alpha")
    assert result.exit_code == 0, result.output
    with host.app.app_context():
        code = host.havn.get_project(project_id).referral_code
    assert code and f"referral code {code}" in result.output

    bad = _run(host, "sync-project", "99", "--email", "a@alpha.example", "--name", "Ann")
    assert bad.exit_code == 1 and "no project with id 99" in bad.output
    invalid = _run(host, "sync-project", str(project_id), "--email", "nope", "--name", "")
    assert invalid.exit_code == 1 and "email:" in invalid.output and "name:" in invalid.output
    missing = _run(host, "sync-project", str(project_id))
    assert missing.exit_code == 2 and "--email" in missing.output


def test_sync_members_from_csv(make_host: Any, tmp_path: Path) -> None:
    host = make_host({"HAVN_BULK_MAX_SIZE": 50})
    a_id, a_code, _, _ = synced_chain(host)
    csv_file = tmp_path / "team.csv"
    rows = "\n".join(f"m{n}@team.example,Member {n},ignored" for n in range(120))
    csv_file.write_text("\ufeffEmail,Name,Notes\n" + rows + "\n\n", encoding="utf-8")
    result = _run(host, "sync-members", str(a_id), str(csv_file))
    assert result.exit_code == 0, result.output
    assert "Syncing 120 members" in result.output
    assert f"120 synced, 0 failed (of 120); linked to {a_code}" in result.output
    partners = [u for u in dump(sandbox_of(host))["users"] if u["email"].startswith("m")]
    assert len(partners) == 120


@pytest.mark.parametrize("content, message", [
    ("mail,fullname\nx@y.example,X\n", "email and name"),
    ("email,name\n", "no member rows"),
    ("email,name\ngood@t.example,Good\nbad-address,Bad\n", "users[1].email"),
])
def test_sync_members_refuses_bad_csv(make_host: Any, tmp_path: Path, content: str, message: str) -> None:
    host = make_host()
    a_id, _, _, _ = synced_chain(host)
    csv_file = tmp_path / "team.csv"
    csv_file.write_text(content, encoding="utf-8")
    users_before = dump(sandbox_of(host))["counts"]["users"]
    result = _run(host, "sync-members", str(a_id), str(csv_file))
    assert result.exit_code == 1
    assert message in result.output
    assert dump(sandbox_of(host))["counts"]["users"] == users_before


def _refusing_havn(request: Request) -> Response:
    """A HAVN bulk sync refusing every user whose email starts with "reject" (per-user errors by index)."""
    payload = json.loads(request.get_data())
    results, errors = [], []
    for index, user in enumerate(payload["users"]):
        if user["email"].startswith("reject"):
            errors.append({"index": index, "email": user["email"], "error": "User is inactive in HAVN"})
        else:
            results.append({"success": True, "email": user["email"], "user_id": "usr_1",
                            "referral_code": payload["referral_code"]})
    body = {"success": True, "message": "Bulk sync completed", "results": results, "errors": errors,
            "summary": {"total": len(payload["users"]), "success": len(results), "failed": len(errors)},
            "referral_code": payload["referral_code"]}
    return Response(json.dumps(body), status=200, content_type="application/json")


def test_sync_members_names_the_csv_lines_havn_refused_despite_blank_lines(make_host: Any, httpserver: Any,
                                                                           tmp_path: Path) -> None:
    httpserver.expect_request("/api/v1/webhook/user-sync", method="POST").respond_with_handler(_refusing_havn)
    host = make_host(http_config(httpserver.url_for("/").rstrip("/"), HAVN_BULK_MAX_SIZE=2))
    with host.app.app_context():
        project = host.havn.create_project("Team")
        project.referral_code, project.sync_state = "HAVN-TT-001", "synced"
        host.db.session.commit()
        project_id = project.id
    csv_file = tmp_path / "team.csv"
    csv_file.write_text(
        "email,name\n"                  # line 1
        "\n"                            # 2
        "ok1@team.example,Ok One\n"     # 3
        "\n"                            # 4
        "\n"                            # 5
        "reject1@team.example,R One\n"  # 6
        ",\n"                           # 7: no email, no name: skipped
        "ok2@team.example,Ok Two\n"     # 8
        "\n"                            # 9
        "reject2@team.example,R Two\n",  # 10 (third batch: its index there is 0)
        encoding="utf-8")
    result = _run(host, "sync-members", str(project_id), str(csv_file))
    assert result.exit_code == 1
    assert "2 synced, 2 failed (of 4); linked to HAVN-TT-001" in result.output
    refused = [line.strip() for line in result.output.splitlines() if "User is inactive" in line]
    assert refused == ["line 6: reject1@team.example: User is inactive in HAVN",
                       "line 10: reject2@team.example: User is inactive in HAVN"]


def test_sync_members_names_the_csv_line_of_an_invalid_row(make_host: Any, tmp_path: Path) -> None:
    host = make_host()
    a_id, _, _, _ = synced_chain(host)
    csv_file = tmp_path / "team.csv"
    csv_file.write_text("email,name\n\ngood@t.example,Good\n\n\nbad-address,Bad\n,Nameless\n", encoding="utf-8")
    result = _run(host, "sync-members", str(a_id), str(csv_file))
    assert result.exit_code == 1
    assert "line 6: users[1].email: must be a valid email address" in result.output
    assert "line 7: users[2].email: must be a valid email address" in result.output


def test_deliver_once_status_and_retry_dead(make_host: Any) -> None:
    host = make_host({**FAST_RETRY, "HAVN_DELIVERY": "worker", "HAVN_DELIVERY_MAX_ATTEMPTS": 1})
    _, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, 4)

    status = _run(host, "status")
    assert status.exit_code == 0
    assert "pending            4" in status.output and "due now: 4" in status.output
    assert "oldest pending: payment 1" in status.output

    sandbox_of(host).faults.configure({"seed": 1, "burst_429": 1})
    first = _run(host, "deliver", "--once", "--concurrency", "2")
    assert first.exit_code == 0, first.output
    assert "Delivering 4 payment(s)" in first.output
    assert "Delivered: 3 sent, 1 dead" in first.output

    status = _run(host, "status").output
    assert "sent               3" in status and "dead               1" in status and "oldest pending: none" in status

    nothing = _run(host, "deliver", "--once")
    assert "nothing was due" in nothing.output
    revived = _run(host, "deliver", "--once", "--retry-dead")
    assert "Requeued 1 dead payment(s)" in revived.output and "Delivered: 1 sent" in revived.output
    assert dump(sandbox_of(host))["counts"]["transactions"] == 4

    assert _run(host, "deliver", "--once", "--concurrency", "0").exit_code == 2


def test_commands_explain_a_client_only_app(make_host: Any) -> None:
    host = make_host(with_db=False)
    for args in (("status",), ("deliver", "--once"), ("init-db",), ("sync-project", "1", "--email", "a@b.co",
                                                                      "--name", "A")):
        result = _run(host, *args)
        assert result.exit_code == 1
        assert "client-only" in result.output
