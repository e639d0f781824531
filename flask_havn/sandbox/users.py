"""Users and associates: referral codes, the associate tree, and ``POST /user-sync``.

Meaning of the fields (the contract leaves some open; these are the sandbox's choices):

* ``upline_code`` names the associate a *newly created* associate hangs under.
* ``referral_code`` always names an **existing** associate (404 when unknown): the
  user becomes a member of it (a project's team "linked to the project's referral
  code"). If an associate is also created for the user, its upline is
  ``upline_code``'s associate when given, else ``referral_code``'s.
* ``create_associate`` defaults to true for a single sync. In a bulk sync, when
  neither the user nor the shared fields set it, it is false if a referral code
  applies (team members are linked, not given associates). When none applies,
  only the **first** successful user gets an associate and every later such
  user is linked to its code (USER_SYNC_WEBHOOK.md's reading of "auto", contract
  §3.5). More generally the answer's top-level ``referral_code`` is the first
  successful user's code, and it is what later users of the same request are
  linked to when they name no code and leave ``create_associate`` unset — the
  same code a client passes as the next batch's shared ``referral_code``. So
  one request of N users and the same users split into batches end identical.
* A user who already has an associate keeps it: a re-sync returns the same code.
* ``is_owner`` gives role ``owner`` (else ``partner``) to the user and their associate.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Dict, List, Mapping, Optional, Tuple

from sqlalchemy import func, select

from ..errors import HAVNValidationError
from ..rules import check_bool, check_country_code, check_email, check_text, optional_code
from .context import Ctx
from .errors import SandboxError, bad_request, conflict, from_validation, not_found
from .store import AssociateRow, UserRow

__all__ = [
    "initials",
    "find_associate",
    "get_associate",
    "create_associate",
    "associate_dict",
    "user_dict",
    "find_user",
    "user_sync",
]

_CODE = re.compile(r"^HAVN-([A-Z]{2})-(\d{3,})$")
_SHARED = ("upline_code", "referral_code", "create_associate", "is_owner")


def initials(name: str) -> str:
    """Two upper-case ASCII letters from the name's word initials, padded with ``X``."""
    letters = []
    for word in name.split():
        ascii_word = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode("ascii")
        first = next((c for c in ascii_word if c.isalpha()), None)
        if first:
            letters.append(first.upper())
    return "".join(letters[:2]).ljust(2, "X")


def find_associate(ctx: Ctx, code: str) -> Optional[AssociateRow]:
    """The associate whose referral code is ``code`` (case-insensitive)."""
    return ctx.session.scalar(select(AssociateRow).where(AssociateRow.referral_code == code.strip().upper()))


def get_associate(ctx: Ctx, associate_id: Optional[str]) -> Optional[AssociateRow]:
    """The associate with public id ``associate_id``."""
    if associate_id is None:
        return None
    return ctx.session.scalar(select(AssociateRow).where(AssociateRow.id == associate_id))


def find_user(ctx: Ctx, email: str) -> Optional[UserRow]:
    """The user with ``email``, compared lower-cased."""
    return ctx.session.scalar(select(UserRow).where(UserRow.email_lower == email.strip().lower()))


def _generate_code(ctx: Ctx, name: str) -> Tuple[str, str, int]:
    xx = initials(name)
    highest = ctx.session.scalar(select(func.max(AssociateRow.code_number)).where(AssociateRow.code_initials == xx))
    number = int(highest or 0) + 1
    while True:
        code = f"HAVN-{xx}-{number:03d}"
        if find_associate(ctx, code) is None:
            return code, xx, number
        number += 1


def create_associate(
    ctx: Ctx,
    name: str,
    *,
    email: Optional[str] = None,
    user_id: Optional[str] = None,
    upline: Optional[AssociateRow] = None,
    role: str = "partner",
    referral_code: Optional[str] = None,
    active: bool = True,
) -> AssociateRow:
    """Add an associate; its code is ``referral_code`` (409 if taken) or a new ``HAVN-XX-NNN``."""
    if referral_code is not None:
        code = referral_code.strip().upper()
        if find_associate(ctx, code) is not None:
            raise conflict(f"referral code {code} already belongs to another associate; choose another code",
                           field="referral_code")
        match = _CODE.match(code)
        xx, number = (match.group(1), int(match.group(2))) if match else (None, None)
    else:
        code, xx, number = _generate_code(ctx, name)
    seq, public_id = ctx.new_id("asc", AssociateRow)
    row = AssociateRow(
        seq=seq, id=public_id, name=name, email=email, user_id=user_id, referral_code=code,
        code_initials=xx, code_number=number, upline_id=upline.id if upline else None,
        role=role, is_active=active, created_at=ctx.stamp,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def associate_dict(row: AssociateRow) -> Dict[str, Any]:
    """The ``associate`` object of a user-sync answer."""
    return {
        "associate_id": row.id,
        "associate_name": row.name,
        "referral_code": row.referral_code,
        "type": "ASSOCIATE",
        "is_active": row.is_active,
        "upline_id": row.upline_id,
        "role": row.role,
    }


def user_dict(row: UserRow) -> Dict[str, Any]:
    """The ``user`` object of a user-sync answer."""
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "is_active": row.is_active,
        "google_id": row.google_id,
        "picture": row.picture,
        "avatar": row.avatar,
        "country_code": row.country_code,
        "role": row.role,
    }


def _optional_str(value: Any, field: str, max_length: int) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise HAVNValidationError(field, f"must be a string of at most {max_length} characters")
    return value


def _parse_user(data: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Check one user's fields with HAVN's rules; raises HAVNValidationError naming the field."""
    p = prefix
    out: Dict[str, Any] = {
        "email": check_email(data.get("email"), f"{p}email"),
        "name": check_text(data.get("name"), f"{p}name", max_length=200, strip=True),
        "google_id": _optional_str(data.get("google_id"), f"{p}google_id", 255),
        "picture": _optional_str(data.get("picture"), f"{p}picture", 2000),
        "avatar": _optional_str(data.get("avatar"), f"{p}avatar", 2000),
        "upline_code": optional_code(data.get("upline_code"), f"{p}upline_code", upper=True),
        "referral_code": optional_code(data.get("referral_code"), f"{p}referral_code", upper=True),
        "country_code": None,
        "create_associate": None,
        "is_owner": None,
    }
    if data.get("country_code") is not None:
        out["country_code"] = check_country_code(data["country_code"], f"{p}country_code")
    for key in ("create_associate", "is_owner"):
        if data.get(key) is not None:
            out[key] = check_bool(data[key], f"{p}{key}")
    return out


def _lookup(ctx: Ctx, code: Optional[str], field: str) -> Optional[AssociateRow]:
    if code is None:
        return None
    row = find_associate(ctx, code)
    if row is None:
        raise not_found(f"{field} {code} is not a known referral code; sync or seed that associate first",
                        field=field)
    return row


def _sync_one(ctx: Ctx, fields: Dict[str, Any], create_default: bool) -> Dict[str, Any]:
    """Create or update one user (and maybe an associate); the single-sync answer."""
    linked = _lookup(ctx, fields["referral_code"], "referral_code")
    upline = _lookup(ctx, fields["upline_code"], "upline_code")
    create = fields["create_associate"] if fields["create_associate"] is not None else create_default
    role = None if fields["is_owner"] is None else ("owner" if fields["is_owner"] else "partner")

    user = find_user(ctx, fields["email"])
    user_created = user is None
    if user is None:
        seq, public_id = ctx.new_id("usr", UserRow)
        user = UserRow(seq=seq, id=public_id, email=fields["email"], email_lower=fields["email"].lower(),
                       role=role or "partner", is_active=True, created_at=ctx.stamp, name=fields["name"],
                       updated_at=ctx.stamp)
        ctx.session.add(user)
    user.name = fields["name"]
    user.updated_at = ctx.stamp
    for key in ("google_id", "picture", "avatar", "country_code"):
        if fields[key] is not None:
            setattr(user, key, fields[key])
    if role is not None:
        user.role = role
    if linked is not None:
        user.member_of_id = linked.id
    ctx.session.flush()

    own = get_associate(ctx, user.associate_id)
    associate_created = False
    if own is None and create:
        own = create_associate(ctx, user.name, email=user.email, user_id=user.id,
                               upline=upline or linked, role=user.role)
        user.associate_id = own.id
        associate_created = True
    elif own is not None and role is not None:
        own.role = role
    ctx.session.flush()

    shown = own or get_associate(ctx, user.member_of_id)
    return {
        "success": True,
        "message": "User synced successfully",
        "user_created": user_created,
        "associate_created": associate_created,
        "user_id": user.id,
        "referral_code": shown.referral_code if shown else None,
        "user": user_dict(user),
        "associate": associate_dict(shown) if shown else None,
    }


def _sync_single(ctx: Ctx, payload: Mapping[str, Any]) -> Dict[str, Any]:
    try:
        fields = _parse_user(payload)
    except HAVNValidationError as exc:
        raise from_validation(exc) from None
    return _sync_one(ctx, fields, create_default=True)


def _sync_bulk(ctx: Ctx, payload: Mapping[str, Any]) -> Dict[str, Any]:
    users = payload.get("users")
    limit = ctx.settings.bulk_max_size
    if not isinstance(users, list) or not users:
        raise bad_request("users must be a non-empty list of user objects", field="users")
    if len(users) > limit:
        raise bad_request(f"users holds {len(users)} users; send at most {limit} per request (split the batch)",
                          field="users")
    for index, item in enumerate(users):
        if not isinstance(item, Mapping):
            raise bad_request(f"users[{index}] must be an object with email and name", field=f"users[{index}]")
    shared: Dict[str, Any] = {}
    try:
        for key in ("upline_code", "referral_code"):
            shared[key] = optional_code(payload.get(key), key, upper=True)
        for key in ("create_associate", "is_owner"):
            shared[key] = None if payload.get(key) is None else check_bool(payload[key], key)
    except HAVNValidationError as exc:
        raise from_validation(exc) from None

    results: List[Dict[str, Any]] = []
    errors: List[Dict[str, Any]] = []
    anchor: Optional[str] = None  # the answer's top-level referral_code, once a user has one
    for index, item in enumerate(users):
        merged = dict(item)
        for key in _SHARED:
            if merged.get(key) is None and shared[key] is not None:
                merged[key] = shared[key]
        if merged.get("referral_code") is None and merged.get("create_associate") is None and anchor is not None:
            # Batch-invariant: a later batch gets this code as its shared referral_code, so link to it here too.
            merged["referral_code"] = anchor
        create_default = merged.get("referral_code") is None
        savepoint = ctx.session.begin_nested()
        try:
            try:
                fields = _parse_user(merged, prefix=f"users[{index}].")
            except HAVNValidationError as exc:
                raise from_validation(exc) from None
            result = _sync_one(ctx, fields, create_default=create_default)
            savepoint.commit()
            results.append(result)
            if anchor is None and result["referral_code"]:
                anchor = result["referral_code"]
        except SandboxError as exc:
            savepoint.rollback()
            email = item.get("email")
            errors.append({"index": index, "email": email if isinstance(email, str) else None, "error": exc.message})
    return {
        "success": bool(results),
        "message": "Bulk sync completed" if results else "Bulk sync failed: no user could be synced (see errors)",
        "results": results,
        "summary": {"total": len(users), "success": len(results), "errors": len(errors), "failed": len(errors)},
        "referral_code": anchor,
        "errors": errors,
    }


def user_sync(ctx: Ctx, payload: Mapping[str, Any]) -> Dict[str, Any]:
    """``POST /user-sync``: bulk when the body has ``users``, else single."""
    if "users" in payload:
        return _sync_bulk(ctx, payload)
    return _sync_single(ctx, payload)
