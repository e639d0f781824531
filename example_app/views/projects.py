"""Projects: list and create (with an optional upline code), one project's page, owner sync, team import."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from flask_havn import HAVNError, HAVNValidationError, members_csv

from ..extensions import db, havn
from ..forms import MAX_TEAM_BYTES, MAX_TEAM_ROWS, field_errors, get_row

__all__ = ["bp"]

bp = Blueprint("projects", __name__)


def _project_or_404(project_id: int) -> Any:
    project = get_row(db.session, havn.models.Project, project_id)
    if project is None:
        abort(404, description=f"There is no project #{project_id}; pick one from the projects list.")
    return project


@bp.get("/projects")
def index() -> Any:
    """All projects, and the form to create one (``?upline=CODE`` pre-fills the referrer's code)."""
    form = {"project_name": "", "upline_referral_code": request.args.get("upline", "").strip()}
    return _render_index(form, {})


def _render_index(form: Dict[str, str], errors: Dict[str, str], status: int = 200) -> Any:
    Project = havn.models.Project
    projects = db.session.execute(db.select(Project).order_by(Project.id)).scalars().all()
    by_code = {p.referral_code: p for p in projects if p.referral_code}
    return render_template("projects.html", projects=projects, by_code=by_code, form=form,
                           errors=errors), status


@bp.post("/projects")
def create() -> Any:
    """Create a project; the upline code (if any) is the referral code of whoever referred it."""
    form = {key: request.form.get(key, "").strip() for key in ("project_name", "upline_referral_code")}
    try:
        project = havn.create_project(form["project_name"], upline_referral_code=form["upline_referral_code"] or None)
    except HAVNValidationError as exc:
        return _render_index(form, field_errors(exc, {"name": "project_name"}), 400)
    flash(f"Project {project.name} created. Sync its owner to get its referral code.", "success")
    return redirect(url_for(".show", project_id=project.id))


def _owner(project: Any) -> Optional[Any]:
    return next((m for m in project.members if m.role == "owner"), None)


def _render_show(project: Any, *, owner_form: Optional[Dict[str, str]] = None,
                 owner_errors: Optional[Dict[str, str]] = None, team_text: str = "",
                 team_errors: Optional[Dict[str, str]] = None, team_rows: Optional[List[members_csv.MemberRow]] = None,
                 status: int = 200) -> Any:
    owner = _owner(project)
    if owner_form is None:
        owner_form = {"email": owner.email if owner else "", "name": owner.name if owner else ""}
    Project, Payment = havn.models.Project, havn.models.Payment
    upline = None
    if project.upline_referral_code:
        upline = db.session.execute(
            db.select(Project).where(Project.referral_code == project.upline_referral_code)).scalar_one_or_none()
    payments = db.session.execute(
        db.select(Payment).where(Payment.project_id == project.id).order_by(Payment.id.desc())).scalars().all()
    partners = sorted((m for m in project.members if m.role != "owner"), key=lambda m: m.id)
    return render_template(
        "project.html", project=project, owner=owner, partners=partners, upline=upline,
        downline=havn.downline_projects(project), payments=payments,
        owner_form=owner_form, owner_errors=owner_errors or {},
        team_text=team_text, team_errors=team_errors or {}, team_rows=team_rows,
    ), status


@bp.get("/projects/<int:project_id>")
def show(project_id: int) -> Any:
    """One project: its referral code, owner, team, downline and payments."""
    return _render_show(_project_or_404(project_id))


@bp.post("/projects/<int:project_id>/owner")
def sync_owner(project_id: int) -> Any:
    """Sync the project's owner to HAVN: that gives the project its referral code."""
    project = _project_or_404(project_id)
    form = {key: request.form.get(key, "").strip() for key in ("email", "name")}
    try:
        havn.sync_owner(project, form["email"], form["name"])
    except HAVNValidationError as exc:
        return _render_show(project, owner_form=form, owner_errors=field_errors(exc), status=400)
    except HAVNError as exc:
        db.session.rollback()
        flash(f"HAVN did not sync the owner: {exc.message}", "error")
        return redirect(url_for(".show", project_id=project_id))
    flash(f"Owner synced. {project.name}'s referral code is {project.referral_code}.", "success")
    return redirect(url_for(".show", project_id=project_id))


@bp.post("/projects/<int:project_id>/team")
def import_team(project_id: int) -> Any:
    """Import the team (pasted ``email,name`` lines or an uploaded CSV file); a result per row.

    flask_havn's :mod:`~flask_havn.members_csv` reads and syncs it, as ``flask havn
    sync-members`` does: the good rows are synced, each bad one says why.
    """
    project = _project_or_404(project_id)
    text = request.form.get("lines", "")
    upload = request.files.get("file")
    try:
        if upload is not None and upload.filename:
            limit = current_app.config.get("SHOPEASY_TEAM_MAX_BYTES", MAX_TEAM_BYTES)
            data = upload.read(limit + 1)
            if len(data) > limit:
                return _render_show(project, team_errors={"file": f"The file is larger than {limit:,} bytes; "
                                                                  "split it."}, status=400)
            text = members_csv.decode(data)
        if not project.referral_code:
            return _render_show(project, team_text=text, team_errors={
                "lines": "Sync the owner first: team members are linked to the project's referral code."},
                status=400)
        rows = members_csv.parse(text, max_rows=MAX_TEAM_ROWS)
    except HAVNValidationError as exc:
        uploaded = upload is not None and bool(upload.filename)
        where, what = ("file", "The file") if uploaded else ("lines", "The list")
        return _render_show(project, team_text=text, team_errors={where: f"{what} {exc.reason}"}, status=400)
    try:
        members_csv.sync(havn.projects, project, rows)
    except HAVNError as exc:
        db.session.rollback()
        flash(f"HAVN did not sync the whole team: {exc.message}", "error")
    synced = sum(1 for row in rows if row.result == members_csv.SYNCED)
    status = 200 if synced else 400
    return _render_show(project, team_text="" if synced == len(rows) else text, team_rows=rows, status=status)
