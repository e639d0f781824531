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


@pytest.mark.parametrize("command", ["init-db", "create-project", "projects", "sync-project", "sync-members",
                                     "payments", "deliver", "status"])
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
    (b"mail,fullname\nx@y.example,X\n", "team.csv has a header line without the columns email and name"),
    (b"email,name\n", "team.csv has no members"),
    (b"\xff\xfeemail,name\n\x00a@b.example,A\n", "team.csv is not UTF-8 text; save it as CSV (UTF-8)"),
    (b'email,name\n"a@b.example,A\n', "team.csv is not valid CSV"),
])
def test_sync_members_refuses_an_unreadable_file_with_one_error_line(make_host: Any, tmp_path: Path, content: bytes,
                                                                      message: str) -> None:
    host = make_host()
    a_id, _, _, _ = synced_chain(host)
    csv_file = tmp_path / "team.csv"
    csv_file.write_bytes(content)
    users_before = dump(sandbox_of(host))["counts"]["users"]
    result = _run(host, "sync-members", str(a_id), str(csv_file))
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert result.output.splitlines()[-1].startswith(f"Error: {tmp_path / message}")
    assert "Traceback" not in result.output
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


def test_sync_members_syncs_the_good_rows_and_names_the_line_of_each_bad_one(make_host: Any, tmp_path: Path) -> None:
    host = make_host()
    a_id, a_code, _, _ = synced_chain(host)
    csv_file = tmp_path / "team.csv"
    csv_file.write_text("email,name\n\ngood@t.example,Good\n\n\nbad-address,Bad\n,Nameless\n"
                        "alice@alpha.example,Alice\nGOOD@t.example,Twice\nfine@t.example,Fine\n", encoding="utf-8")
    result = _run(host, "sync-members", str(a_id), str(csv_file))
    assert result.exit_code == 1
    assert f"2 synced, 0 failed (of 2); linked to {a_code}" in result.output
    assert [line.strip() for line in result.output.splitlines() if line.startswith("  line ")] == [
        "line 6: bad-address: email must be a valid email address like name@example.com",
        "line 7: (no email): email must be a valid email address like name@example.com",
        "line 8: alice@alpha.example: is the project's owner (synced as owner, not as a team member)",
        "line 9: GOOD@t.example: listed twice (also line 3)",
    ]
    assert result.output.splitlines()[-1] == (f"Error: 4 of 6 rows of {csv_file} were not synced (listed above); "
                                              "fix them and run the command again with those rows")
    partners = sorted(u["email"] for u in dump(sandbox_of(host))["users"] if u["email"].endswith("@t.example"))
    assert partners == ["fine@t.example", "good@t.example"]


def test_sync_members_reads_a_file_without_header(make_host: Any, tmp_path: Path) -> None:
    host = make_host()
    a_id, _, _, _ = synced_chain(host)
    csv_file = tmp_path / "team.csv"
    csv_file.write_text('ann@t.example,"Ann, Jr."\nben@t.example,Ben\n', encoding="utf-8")
    result = _run(host, "sync-members", str(a_id), str(csv_file))
    assert result.exit_code == 0, result.output
    with host.app.app_context():
        members = host.havn.get_project(a_id).members
        assert sorted((m.email, m.name, m.sync_state) for m in members if m.role == "partner") == [
            ("ann@t.example", "Ann, Jr.", "synced"), ("ben@t.example", "Ben", "synced")]


def test_create_project_then_list_projects(make_host: Any) -> None:
    host = make_host()
    created = _run(host, "create-project", "  Acme  ")
    assert created.exit_code == 0, created.output
    assert created.output.strip() == ("Project 1 (Acme) created. Next: flask havn sync-project 1 "
                                      "--email OWNER_EMAIL --name OWNER_NAME")
    synced = _run(host, "sync-project", "1", "--email", "ada@acme.example", "--name", "Ada Lee")
    assert synced.exit_code == 0, synced.output
    referred = _run(host, "create-project", "Bolt", "--upline", "havn-al-001")
    assert referred.exit_code == 0, referred.output
    assert "Project 2 (Bolt) created, referred by HAVN-AL-001." in referred.output
    bad = _run(host, "create-project", "", "--upline", "x")
    assert bad.exit_code == 1 and "name:" in bad.output and "upline_referral_code:" in bad.output

    listed = _run(host, "projects").output.splitlines()
    assert [line.split() for line in listed] == [
        ["1", "synced", "HAVN-AL-001", "-", "Acme"],
        ["2", "pending", "-", "HAVN-AL-001", "Bolt"],
        ["1–2", "of", "2", "projects"],
    ]
    pending = _run(host, "projects", "--sync-state", "pending").output.splitlines()
    assert pending[0].split()[:2] == ["2", "pending"] and pending[-1] == "1–1 of 1 projects"
    assert _run(host, "projects", "--offset", "5").output.strip() == "No projects here (2 in all)."
    assert _run(host, "projects", "--sync-state", "bogus").exit_code == 2
    assert _run(host, "projects", "--limit", "0").exit_code == 2


def test_payments_lists_newest_first_filtered_by_state_and_project(make_host: Any) -> None:
    host = make_host({"HAVN_DELIVERY": "worker"})
    assert _run(host, "payments").output.strip() == "No payments yet."
    a_id, _, b_id, _ = synced_chain(host)
    record_many(host, b_id, 3)
    record_many(host, a_id, 1, prefix="a-pay")
    with host.app.app_context():
        host.havn.deliver_payment(1)

    listed = _run(host, "payments").output.splitlines()
    assert [line.split()[0] for line in listed[:-1]] == ["4", "3", "2", "1"]
    assert listed[-1] == "1–4 of 4 payments"
    first = listed[-2].split()
    assert first[:6] == ["1", "project", str(b_id), "1000", "USD", "sent"]
    assert first[7] != "-"  # HAVN's transaction id
    pending_of_b = _run(host, "payments", "--state", "pending", "--project", str(b_id), "--limit", "1")
    assert pending_of_b.exit_code == 0, pending_of_b.output
    assert [line.split()[0] for line in pending_of_b.output.splitlines()] == ["3", "1–1"]
    assert pending_of_b.output.splitlines()[-1] == "1–1 of 2 payments"
    unknown = _run(host, "payments", "--project", "99")
    assert unknown.exit_code == 1 and "no project with id 99" in unknown.output
    assert _run(host, "payments", "--state", "lost").exit_code == 2


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
