"""The ``Projects`` service: create projects, sync their owner and team to HAVN, walk the referral tree.

Reached as ``havn.projects`` (the current app's) or ``get_state(app).projects``.
Every method works inside an app context, accepts a project row or its integer
id, commits the host's ``db.session`` (anything else pending in it is
committed too), and raises :class:`~flask_havn.errors.HAVNError` subclasses
whose message says what to do. Invalid input raises
:class:`~flask_havn.errors.HAVNValidationError` naming the Python argument
*before* anything is written; with several wrong, ``.errors`` maps each to its
message. Signals are sent after the commit that recorded what they announce.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import sqlalchemy as sa

from . import rules
from .announce import announce
from .errors import HAVNAPIError, HAVNConflictError, HAVNError, HAVNRecordNotFoundError, HAVNValidationError
from .models import SYNC_STATES, column_length, utcnow
from .rows import ProjectRow
from .signals import members_synced, project_synced

if TYPE_CHECKING:  # pragma: no cover
    from .results import BulkSyncResult
    from .state import HAVNState

__all__ = ["Projects", "MAX_MEMBERS_PER_CALL", "ProjectRef"]

#: Most users one :meth:`Projects.sync_members` call accepts (they are sent in batches).
MAX_MEMBERS_PER_CALL = 10_000
#: A project row or its integer id.
ProjectRef = Any


def commit(session: Any) -> None:
    """Commit the host's session; roll it back (and re-raise) if the commit fails."""
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise


def get_row(state: "HAVNState", model: Any, value: Any, field: str, how_to_create: str) -> Any:
    """``value`` itself when it is a row of ``model``, else the row with that id.

    ``field`` is the caller's argument and the kind of row (``"project"``). A
    value that is no id raises :class:`HAVNValidationError` on ``field``; an
    id with no row raises :class:`HAVNRecordNotFoundError` (404 in the routes).
    """
    if isinstance(value, model):
        return value
    row_id = rules.check_id(value, field)
    row = state.session.get(model, row_id)
    if row is None:
        raise HAVNRecordNotFoundError(field, f"no {field} with id {row_id}; {how_to_create}")
    return row


class Projects:
    """Projects of one app and their sync with HAVN (``havn.projects``)."""

    def __init__(self, state: "HAVNState") -> None:
        self._state = state

    def __repr__(self) -> str:
        return "<Projects>"

    @property
    def _models(self) -> Any:
        return self._state.models

    # -- reading -----------------------------------------------------------

    def get(self, project: ProjectRef) -> ProjectRow:
        """The project row for a row or an id; an unknown id raises :class:`HAVNRecordNotFoundError`."""
        return get_row(self._state, self._models.Project, project, "project",
                       "create it first with havn.projects.create() or POST /projects")

    def list(self, *, sync_state: Optional[str] = None, limit: int = 100,
             offset: int = 0) -> Tuple[List[ProjectRow], int]:
        """One page of projects, oldest first, and how many there are in all (``sync_state`` filters)."""
        Project = self._models.Project
        query = sa.select(Project)
        if sync_state is not None:
            if sync_state not in SYNC_STATES:
                raise HAVNValidationError("sync_state", f"must be one of {', '.join(SYNC_STATES)}")
            query = query.where(Project.sync_state == sync_state)
        session = self._state.session
        total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
        rows = session.execute(query.order_by(Project.id).offset(offset).limit(limit)).scalars().all()
        return list(rows), int(total)

    def downline(self, project: ProjectRef) -> List[ProjectRow]:
        """The projects this project referred (their upline code is its referral code), oldest first."""
        project = self.get(project)
        if not project.referral_code:
            return []
        Project = self._models.Project
        return list(Project.query.filter_by(upline_referral_code=project.referral_code).order_by(Project.id))

    # -- writing -----------------------------------------------------------

    def create(self, name: str, upline_referral_code: Optional[str] = None) -> ProjectRow:
        """Create a project; ``upline_referral_code`` is the code of the project that referred it.

        The code's format is checked here (3–50 characters, upper-cased); whether
        HAVN knows it is HAVN's to say when the owner is synced.
        """
        errors = rules.FieldErrors()
        clean_name = errors.check(rules.check_text, name, "name", strip=True,
                                  max_length=column_length(self._models.Project, "name"))
        upline = errors.check(rules.optional_code, upline_referral_code, "upline_referral_code", upper=True)
        errors.raise_if_any()
        project = self._models.Project(name=clean_name, upline_referral_code=upline, sync_state="pending")
        self._state.session.add(project)
        commit(self._state.session)
        return project

    def sync_owner(self, project: ProjectRef, email: str, name: str) -> ProjectRow:
        """Sync the project's owner to HAVN; store and return the project with its referral code.

        The owner is synced with ``is_owner=True`` and the project's
        ``upline_referral_code`` as ``upline_code``. Syncing again is idempotent
        (HAVN returns the same code). Once synced, the owner cannot change: the
        code is in use. If HAVN refuses (e.g. 404: unknown upline code), the
        project is left ``failed`` with the message and the error is raised.
        Sends ``project_synced`` on success.
        """
        state = self._state
        session = state.session
        Project, Member = self._models.Project, self._models.ProjectMember
        project = self.get(project)
        errors = rules.FieldErrors()
        email, name = _check_member(errors, Member, email, name, "")
        errors.raise_if_any()
        email_key = email.lower()
        owner = Member.query.filter_by(project_id=project.id, role="owner").first()
        if owner is not None and owner.email_key != email_key and project.sync_state == "synced":
            raise HAVNValidationError("email", f"project {project.id} is already synced with another owner and its "
                                      f"referral code {project.referral_code} is in use; the owner cannot change")
        elsewhere = Member.query.filter(Member.email_key == email_key, Member.role == "owner",
                                        Member.project_id != project.id).first()
        if elsewhere is not None:
            raise HAVNValidationError("email", f"already owns project {elsewhere.project_id}; HAVN keeps one "
                                      "associate per email, so each project needs an owner of its own")
        member = Member.query.filter_by(project_id=project.id, email_key=email_key).first()
        if owner is not None and member is not None and owner is not member:
            raise HAVNValidationError("email", f"is a partner of project {project.id}; sync a different address "
                                      "as owner or remove the partner first")
        member = member or owner
        commit(session)  # end the read: no transaction stays open while HAVN answers

        try:
            result = state.make_client().users.sync(email, name, is_owner=True,
                                                    upline_code=project.upline_referral_code,
                                                    create_associate=True)
            code = result.referral_code
            if not code:
                raise HAVNAPIError("HAVN synced the owner but returned no referral code; try again, or contact "
                                   "HAVN support if it persists", response=result.raw)
            associate_id = result.associate.associate_id if result.associate else None
            _check_answer(((code, Project, "referral_code"), (associate_id, Project, "havn_associate_id"),
                           (result.user_id, Member, "havn_user_id")), result.raw)
            clash = Project.query.filter(Project.referral_code == code, Project.id != project.id).first()
            if clash is not None:
                raise HAVNConflictError(
                    f"HAVN returned referral code {code}, which project {clash.id} already has; HAVN keys associates "
                    "by email, so sync this project with an owner address of its own", status_code=409)
        except HAVNError as exc:
            project.sync_state = "failed"
            project.last_error = exc.message
            self._upsert_owner(project, member, email, name, sync_state="failed", last_error=exc.message)
            commit(session)
            raise
        project.referral_code = code
        project.havn_associate_id = associate_id
        project.sync_state = "synced"
        project.last_error = None
        project.synced_at = utcnow()
        self._upsert_owner(project, member, email, name, sync_state="synced", last_error=None,
                           havn_user_id=result.user_id)
        commit(session)
        announce(project_synced, f"project {project.id}", project=project, result=result)
        return project

    def _upsert_owner(self, project: Any, member: Any, email: str, name: str, **values: Any) -> Any:
        if member is None:
            member = self._models.ProjectMember(project_id=project.id)
            self._state.session.add(member)
        member.email = email
        member.email_key = email.lower()
        member.name = name
        member.role = "owner"
        for key, value in values.items():
            setattr(member, key, value)
        return member

    def sync_members(self, project: ProjectRef, users: Sequence[Mapping[str, Any]], *,
                     on_batch: Optional[Callable[[int, int, Any], None]] = None) -> "BulkSyncResult":
        """Sync a project's team as partners linked to its referral code; the merged BulkSyncResult.

        ``users`` is a list of ``{"email", "name"}``. Every entry is checked
        first (errors name ``users[3].email``…; nothing is written). Members
        are stored ``pending``, then sent in batches of ``HAVN_BULK_MAX_SIZE``
        with the project's ``referral_code`` and ``create_associate=False``;
        after each batch its members become ``synced`` or ``failed`` with
        HAVN's per-member error, and ``on_batch(batch_no, total_batches,
        batch_result)`` runs. Sends ``members_synced`` at the end. If a whole
        batch fails, members not yet synced are marked ``failed`` and the error
        is raised (``.partial_result`` holds what succeeded).
        """
        state = self._state
        session = state.session
        project = self.get(project)
        if not project.referral_code:
            raise HAVNValidationError("project", f"project {project.id} has no referral code yet; sync its "
                                      f"owner first (havn.projects.sync_owner or POST /projects/{project.id}/sync)")
        batch_size = state.config.bulk_max_size
        members = self._store_pending(project, self._check_members(project, users))

        def record_batch(number: int, total: int, batch: Any) -> None:
            offset = (number - 1) * batch_size
            _record_batch(members[offset:offset + batch_size], batch)
            commit(session)
            if on_batch is not None:
                on_batch(number, total, batch)

        try:
            result = state.make_client().users.sync_bulk(
                [{"email": m.email, "name": m.name} for m in members],
                referral_code=project.referral_code, is_owner=False, create_associate=False,
                batch_size=batch_size, on_batch=record_batch,
            )
        except HAVNError as exc:
            session.rollback()
            for member in members:
                if member.sync_state == "pending":
                    member.sync_state = "failed"
                    member.last_error = exc.message
            commit(session)
            raise
        announce(members_synced, f"project {project.id}", project=project, members=members, result=result)
        return result

    def _store_pending(self, project: Any, entries: List[Tuple[str, str]]) -> List[Any]:
        """Upsert each ``(email, name)`` as a ``pending`` partner of ``project``; commit; the rows."""
        Member = self._models.ProjectMember
        session = self._state.session
        existing = {m.email_key: m for m in Member.query.filter(
            Member.project_id == project.id, Member.email_key.in_([e.lower() for e, _ in entries]))}
        members: List[Any] = []
        for email, name in entries:
            member = existing.get(email.lower())
            if member is None:
                member = Member(project_id=project.id, email_key=email.lower(), role="partner")
                session.add(member)
            member.email = email
            member.name = name
            member.sync_state = "pending"
            member.last_error = None
            members.append(member)
        commit(session)
        return members

    def _check_members(self, project: Any, users: Any) -> List[Tuple[str, str]]:
        """``[(email, name)]`` from the caller's list, or a HAVNValidationError with every problem."""
        if isinstance(users, (str, bytes, Mapping)) or not isinstance(users, Sequence):
            raise HAVNValidationError("users", "must be a list of {\"email\", \"name\"} objects")
        if not users:
            raise HAVNValidationError("users", "must not be empty; pass at least one {\"email\", \"name\"}")
        if len(users) > MAX_MEMBERS_PER_CALL:
            raise HAVNValidationError("users", f"at most {MAX_MEMBERS_PER_CALL} per call; split the list")
        owner = self._models.ProjectMember.query.filter_by(project_id=project.id, role="owner").first()
        errors = rules.FieldErrors()
        seen: Dict[str, int] = {}
        entries: List[Tuple[str, str]] = []
        for index, where, email, name in _member_entries(users, errors, self._models.ProjectMember):
            key = email.lower()
            if key in seen:
                errors.add(f"{where}.email", f"is listed twice (also users[{seen[key]}])")
            elif owner is not None and owner.email_key == key:
                errors.add(f"{where}.email", "is the project's owner; owners are synced with POST /projects/<id>/sync")
            else:
                seen[key] = index
                entries.append((email, name))
        errors.raise_if_any()
        return entries


def _check_member(errors: rules.FieldErrors, member_model: Any, email: Any, name: Any,
                  where: str) -> Tuple[Optional[str], Optional[str]]:
    """A member's ``(email, name)``, each checked against its column (``None`` where a problem went to
    ``errors``, fields prefixed with ``where``): nothing HAVN accepts can then fail to be stored."""
    checked_email = errors.check(rules.check_email, email.strip() if isinstance(email, str) else email,
                                 f"{where}email", max_length=column_length(member_model, "email"))
    checked_name = errors.check(rules.check_text, name, f"{where}name", strip=True,
                                max_length=column_length(member_model, "name"))
    return checked_email, checked_name


def _member_entries(users: Sequence[Any], errors: rules.FieldErrors,
                    member_model: Any) -> Iterator[Tuple[int, str, str, str]]:
    """``(index, "users[i]", email, name)`` for each well-formed entry; problems go to ``errors``."""
    for index, user in enumerate(users):
        where = f"users[{index}]"
        if not isinstance(user, Mapping):
            errors.add(where, "must be an object with email and name")
            continue
        unknown = sorted(set(map(str, user)) - {"email", "name"})
        if unknown:
            errors.add(f"{where}.{unknown[0]}", "is not accepted; send only email and name")
        email, name = _check_member(errors, member_model, user.get("email"), user.get("name"), f"{where}.")
        if email is not None and name is not None:
            yield index, where, email, name


def _too_wide(value: Any, model: Any, column: str) -> Optional[str]:
    """Why ``value`` from HAVN's answer cannot be stored in ``model.<column>`` (``None``: it can).

    Checked before anything is written: PostgreSQL would refuse the row after
    HAVN already synced the user, and leave the two out of step.
    """
    width = column_length(model, column)
    if isinstance(value, str) and len(value) > width:
        return (f"HAVN answered a {column} of {len(value)} characters; this app stores at most {width} "
                "(havn_* tables): widen the column with a migration, or contact HAVN support")
    return None


def _check_answer(values: Sequence[Tuple[Any, Any, str]], raw: Any) -> None:
    """Raise :class:`HAVNAPIError` for the first value of HAVN's answer wider than its column."""
    for value, model, column in values:
        problem = _too_wide(value, model, column)
        if problem is not None:
            raise HAVNAPIError(problem, response=raw)


def _record_batch(chunk: List[Any], batch: Any) -> None:
    """Mark the members of one sent batch ``synced`` or ``failed`` with HAVN's per-member error."""
    failed: Dict[int, str] = {}
    for error in batch.errors:
        index = error.get("index")
        if index is None:
            address = str(error.get("email") or "").lower()
            index = next((i for i, m in enumerate(chunk) if m.email_key == address), None)
        if index is not None and 0 <= index < len(chunk):
            failed[index] = str(error.get("error") or "HAVN refused this user")
    user_ids = {str(r.email or "").lower(): r.user_id for r in batch.results}
    for index, member in enumerate(chunk):
        problem = _too_wide(user_ids.get(member.email_key), type(member), "havn_user_id")
        if problem is not None and index not in failed:
            failed[index] = problem
        if index in failed:
            member.sync_state = "failed"
            member.last_error = failed[index]
        else:
            member.sync_state = "synced"
            member.last_error = None
            member.havn_user_id = user_ids.get(member.email_key) or member.havn_user_id

