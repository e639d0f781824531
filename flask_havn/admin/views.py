"""The operator's console: Flask-Admin views of flask_havn's projects, payments and webhook events.

Imported only by :func:`flask_havn.admin.init_admin` (Flask-Admin is the
optional ``admin`` extra). Every view is read-only — no create, edit or delete,
so no amount, id or state is ever changed by hand — and every change is an
*action* that calls the public services (``projects.sync_owner``,
``outbox.attempt``, ``payments.retry``, the webhook receiver's ``replay``) and
reports, row by row, what happened.

Access is deny-by-default like the JSON routes: each view asks the admin
callback given to ``init_admin`` or else the host's ``@havn.authorize``, and
answers 403 when there is none or it says no. Action forms carry a CSRF token
(Flask-WTF's when it is installed — the same token its ``CSRFProtect`` checks
— else Flask-Admin's ``SecureForm``) and are refused without it.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import sqlalchemy as sa
from flask import abort, flash, has_request_context, redirect, url_for
from flask_admin import Admin, AdminIndexView, BaseView, expose  # type: ignore[import-untyped]  # no py.typed
from flask_admin.actions import action  # type: ignore[import-untyped]
from flask_admin.contrib.sqla import ModelView  # type: ignore[import-untyped]
from flask_admin.contrib.sqla.filters import FilterEqual  # type: ignore[import-untyped]
from flask_admin.form import SecureForm  # type: ignore[import-untyped]
from flask_admin.theme import Bootstrap4Theme  # type: ignore[import-untyped]
from markupsafe import Markup

from ..errors import HAVNError
from ..models import DELIVERY_STATES, EVENT_STATUSES, SYNC_STATES, utcnow
from ..state import get_state
from ..webhooks import get_receiver
from .chart import daily_totals, layout_chart
from .display import format_money
from .network import NODE_HEIGHT, NODE_WIDTH, Layout, earnings_by_code, layout_network

__all__ = ["CATEGORY", "DashboardView", "EventView", "PaymentView", "ProjectView", "add_views", "form_base_class"]

#: The menu category of every flask_havn view in the host's admin.
CATEGORY = "HAVN"
#: Most projects drawn in one downline picture (a huge network stays a readable page).
DOWNLINE_LIMIT = 200

Authorize = Callable[[], bool]


def form_base_class() -> Type[Any]:
    """The action forms' base: Flask-WTF's ``FlaskForm`` if installed, else Flask-Admin's ``SecureForm``.

    Both put a ``csrf_token`` in every action form and refuse a POST without a
    valid one. ``FlaskForm`` comes first because a host with Flask-WTF's
    ``CSRFProtect`` checks every POST against *its* token: a ``SecureForm``
    token would be refused there.
    """
    try:
        from flask_wtf import FlaskForm  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the test extra installs Flask-WTF
        return SecureForm
    return FlaskForm  # type: ignore[no-any-return]


class _Guarded:
    """Deny by default: the view answers 403 unless the admin callback (or ``@havn.authorize``) says yes."""

    #: The callback given to ``init_admin(authorize=…)``; ``None``: the host's ``@havn.authorize``.
    havn_authorize: Optional[Authorize] = None

    def is_accessible(self) -> bool:
        """``True`` only when a callback is registered and returns true for this request."""
        callback = self.havn_authorize or get_state().callbacks.authorize
        return bool(callback is not None and callback())

    def inaccessible_callback(self, name: Any, **kwargs: Any) -> Any:
        """403, never a redirect to a sign-in page the extension knows nothing about."""
        abort(403)


Outcome = Tuple[str, str]


def _each(kind: str, ids: Sequence[str], one: Callable[[Any], Outcome], *, numeric: bool = True) -> None:
    """Run ``one(id)`` for every selected row and flash, per row, what happened and how it went.

    ``one`` returns ``(what happened, flash category)``; a :class:`HAVNError`
    the services raise (refused, conflict, unknown id) is that row's report,
    never a failed page, and the other rows still run. ``numeric``: the ids are
    integers (a forged one that is not is reported, never passed on).
    """
    for ident in ids:
        if numeric and not (ident.isascii() and ident.isdigit()):
            flash(f"{kind} {ident}: refused — not a row id", "error")
            continue
        try:
            what, category = one(int(ident) if numeric else ident)
        except HAVNError as exc:
            what, category = f"refused — {exc}", "error"
        flash(f"{kind} {ident}: {what}", category)


class _HAVNModelView(_Guarded, ModelView):
    """A read-only list and detail page: no create, edit, delete or export; changes are actions."""

    can_create = False
    can_edit = False
    can_delete = False
    can_export = False
    can_view_details = True
    named_filter_urls = True
    page_size = 50

    def __init__(self, model: Any, session: Any, *, form_base: Type[Any], **kwargs: Any) -> None:
        self.form_base_class = form_base
        super().__init__(model, session, category=CATEGORY, **kwargs)


class ProjectView(_HAVNModelView):
    """Projects: codes, upline, owner, team size, last sync; the downline as a tree; "sync owner again"."""

    column_list = ("id", "name", "referral_code", "upline_referral_code", "owner", "members", "sync_state",
                   "synced_at", "last_error")
    column_details_list = ("id", "name", "referral_code", "upline_referral_code", "havn_associate_id", "owner",
                           "members", "sync_state", "synced_at", "last_error", "created_at", "updated_at")
    column_labels = {"upline_referral_code": "Upline", "synced_at": "Last sync", "havn_associate_id": "HAVN associate"}
    column_searchable_list = ("name", "referral_code", "upline_referral_code")
    column_sortable_list = ("id", "name", "referral_code", "sync_state", "synced_at")
    column_default_sort = ("id", True)
    details_template = "havn_admin/project_details.html"

    def __init__(self, model: Any, session: Any, **kwargs: Any) -> None:
        self.column_filters = (FilterEqual(model.sync_state, "Sync state", options=[(s, s) for s in SYNC_STATES]),)
        self.column_formatters = {"owner": _owner, "members": lambda v, c, m, n: len(m.members)}
        super().__init__(model, session, **kwargs)

    def downline_layout(self, project: Any) -> Layout:
        """``project`` and every project below it, as a tree (at most :data:`DOWNLINE_LIMIT` projects)."""
        state = get_state()
        seen: Dict[int, Any] = {project.id: project}
        frontier = [project]
        while frontier and len(seen) < DOWNLINE_LIMIT:
            below = [child for parent in frontier for child in state.projects.downline(parent)
                     if child.id not in seen]
            for child in below[: DOWNLINE_LIMIT - len(seen)]:
                seen[child.id] = child
            frontier = below
        Payment = state.models.Payment  # type: ignore[union-attr]
        commissions = state.session.execute(
            sa.select(Payment.commissions).where(Payment.delivery_state == "sent")).scalars().all()
        return layout_network(seen.values(), earnings_by_code(commissions))

    @staticmethod
    def money(cents: int) -> str:
        """USD cents as the picture shows them."""
        return format_money(cents, "USD")

    @property
    def node_size(self) -> Tuple[int, int]:
        """Width and height of one project's box in the picture."""
        return NODE_WIDTH, NODE_HEIGHT

    @action("sync_owner", "Sync owner again", "Sync the owner of each selected project with HAVN again?")
    def action_sync_owner(self, ids: Sequence[str]) -> None:
        """``projects.sync_owner(project, owner.email, owner.name)`` for each selected project."""
        projects = get_state().projects

        def sync(ident: int) -> Outcome:
            project = projects.get(ident)
            owner = _owner_of(project)
            if owner is None:
                return "skipped — it has no owner to sync yet", "warning"
            project = projects.sync_owner(project, owner.email, owner.name)
            return f"synced — referral code {project.referral_code}", "success"

        _each("Project", ids, sync)


def _project_options() -> List[Tuple[str, str]]:
    """The project filter's choices, read when the list page is drawn: ``(id, "name (#id)")`` per project.

    Empty outside a request (Flask-Admin also asks once when the view is built).
    """
    if not has_request_context():
        return []
    projects, _total = get_state().projects.list(limit=1000)
    return [(str(p.id), f"{p.name} (#{p.id})") for p in projects]


def _owner_of(project: Any) -> Any:
    return next((m for m in project.members if m.role == "owner"), None)


def _owner(view: Any, context: Any, model: Any, name: str) -> str:
    owner = _owner_of(model)
    return "—" if owner is None else f"{owner.name} <{owner.email}>"


def _amount(view: Any, context: Any, model: Any, name: str) -> str:
    return format_money(getattr(model, name), model.currency)


def _usd(view: Any, context: Any, model: Any, name: str) -> str:
    return format_money(getattr(model, name), "USD")


def _commission_table(view: Any, context: Any, model: Any, name: str) -> Markup:
    """The commission breakdown by level (USD cents from HAVN) as a small table."""
    items = [item for item in (model.commissions or ()) if isinstance(item, dict)]
    if not items:
        return Markup("—")
    rows = Markup("").join(
        Markup("<tr><td>{}</td><td>{}</td><td>{}</td></tr>").format(
            item.get("level", "?"), item.get("referral_code") or "—",
            format_money(item["amount"], "USD") if isinstance(item.get("amount"), int) else item.get("amount"))
        for item in sorted(items, key=lambda i: (str(i.get("level")), str(i.get("referral_code")))))
    return Markup('<table class="table table-sm havn-commissions"><thead><tr><th>Level</th><th>Referral code'
                  "</th><th>Commission</th></tr></thead><tbody>{}</tbody></table>").format(rows)


def _pretty_json(view: Any, context: Any, model: Any, name: str) -> Markup:
    value = getattr(model, name)
    if value is None:
        return Markup("—")
    return Markup('<pre class="havn-json">{}</pre>').format(json.dumps(value, indent=2, sort_keys=True,
                                                                       ensure_ascii=False, default=str))


class PaymentView(_HAVNModelView):
    """Payments and their delivery; actions "deliver now", "retry" and "requeue dead", reported per row."""

    column_list = ("id", "project", "amount", "status", "delivery_state", "total_commission", "attempts",
                   "next_attempt_at", "last_error", "created_at")
    column_details_list = (
        "id", "project", "amount", "subtotal", "status", "delivery_state", "havn_transaction_id",
        "payment_gateway", "payment_gateway_transaction_id", "invoice_id", "customer_email", "voucher_code",
        "attempts", "next_attempt_at", "last_error", "commissions", "total_commission",
        "conversion_mode", "exchange_rate", "exchange_rate_source", "amount_usd", "subtotal_usd",
        "conversion_verdict", "havn_amount_usd", "havn_details", "completed_at", "sent_at", "created_at")
    column_labels = {"total_commission": "Commission total", "commissions": "Commission by level",
                     "amount_usd": "Amount (USD, audit)", "subtotal_usd": "Subtotal (USD, audit)",
                     "havn_amount_usd": "HAVN's USD amount", "havn_transaction_id": "HAVN transaction"}
    column_sortable_list = ("id", "amount", "delivery_state", "attempts", "next_attempt_at", "created_at")
    column_searchable_list = ("invoice_id", "payment_gateway_transaction_id", "customer_email")
    column_default_sort = ("id", True)

    def __init__(self, model: Any, session: Any, **kwargs: Any) -> None:
        from ..currency import SUPPORTED_CURRENCIES

        self.column_filters = (
            FilterEqual(model.delivery_state, "Delivery state", options=[(s, s) for s in DELIVERY_STATES]),
            FilterEqual(model.project_id, "Project", options=_project_options),
            FilterEqual(model.currency, "Currency", options=[(c, c) for c in sorted(SUPPORTED_CURRENCIES)]),
            "created_at",
        )
        self.column_formatters = {"amount": _amount, "subtotal": _amount, "total_commission": _usd,
                                  "project": lambda v, c, m, n: m.project.name}
        self.column_formatters_detail = {
            **self.column_formatters, "commissions": _commission_table, "havn_details": _pretty_json,
            "amount_usd": _usd, "subtotal_usd": _usd, "havn_amount_usd": _usd}
        super().__init__(model, session, **kwargs)

    def _get_filter_groups(self) -> Any:
        """Flask-Admin caches filter choices when the view is built; the project list changes, so re-read it."""
        self._refresh_filters_cache()
        return super()._get_filter_groups()

    @action("deliver", "Deliver now", "Deliver the selected payments to HAVN now?")
    def action_deliver(self, ids: Sequence[str]) -> None:
        """``outbox.attempt(payment)`` for each: sent, failed (and why), or why nothing was due."""
        outbox = get_state().outbox
        _each("Payment", ids, lambda ident: _attempt_text(outbox.attempt(ident)))

    @action("retry", "Retry", "Put the selected failed or dead payments back in line?")
    def action_retry(self, ids: Sequence[str]) -> None:
        """``payments.retry(payment)`` for each (it refuses sent, converted-failed and in-flight ones)."""
        _each("Payment", ids, lambda ident: _retry(ident, only_dead=False))

    @action("requeue_dead", "Requeue dead", "Requeue the selected dead payments with a fresh attempt budget?")
    def action_requeue_dead(self, ids: Sequence[str]) -> None:
        """``payments.retry(payment)`` for each selected *dead* payment; any other is skipped and said so."""
        _each("Payment", ids, lambda ident: _retry(ident, only_dead=True))


def _retry(payment_id: int, *, only_dead: bool) -> Outcome:
    """``payments.retry`` one payment (``only_dead``: skip, and say so, unless it is dead)."""
    payments = get_state().payments
    payment = payments.get(payment_id)
    if only_dead and payment.delivery_state != "dead":
        return f"skipped — it is {payment.delivery_state}, not dead", "warning"
    payment = payments.retry(payment)
    if payment.delivery_state == "sent":
        return f"requeued and delivered — HAVN transaction {payment.havn_transaction_id}", "success"
    return f"requeued — now {payment.delivery_state}", "success"


def _attempt_text(attempt: Any) -> Outcome:
    payment = attempt.payment
    if attempt.state is None:
        return f"nothing to do — it is {payment.delivery_state} (not due now)", "warning"
    if attempt.state == "sent":
        return f"delivered — HAVN transaction {payment.havn_transaction_id}", "success"
    return f"{attempt.state} — {payment.last_error or 'no error recorded'}", "error"


class EventView(_HAVNModelView):
    """Webhook events HAVN sent (stored after their signature was verified); action "replay"."""

    column_list = ("id", "type", "status", "attempts", "payment_id", "last_error", "received_at", "processed_at")
    column_details_list = ("id", "type", "status", "test_mode", "attempts", "payment_id", "event_created_at",
                           "received_at", "processed_at", "last_error", "payload")
    column_labels = {"payload": "Payload (verified)", "payment_id": "Payment"}
    column_sortable_list = ("type", "status", "received_at", "processed_at")
    column_default_sort = ("received_at", True)
    column_searchable_list = ("id",)

    def __init__(self, model: Any, session: Any, **kwargs: Any) -> None:
        self.column_filters = (FilterEqual(model.type, "Type"),
                               FilterEqual(model.status, "Status", options=[(s, s) for s in EVENT_STATUSES]))
        self.column_formatters_detail = {"payload": _pretty_json, "last_error": _preformatted}
        self.column_formatters = {"last_error": _last_line}
        super().__init__(model, session, **kwargs)

    @action("replay", "Replay", "Process the selected events again (their signals are sent again)?")
    def action_replay(self, ids: Sequence[str]) -> None:
        """``get_receiver().replay(event_id)`` for each: the event's status after the replay."""
        receiver = get_receiver()

        def replay(ident: str) -> Outcome:
            try:
                outcome = receiver.replay(ident)
            except LookupError:
                return "not found — no stored event has that id", "error"
            if outcome.status_code >= 500:
                return f"failed again — {_tail(outcome.error)}", "error"
            return f"replayed — now {outcome.event_status}", "success"

        _each("Event", ids, replay, numeric=False)


def _tail(text: Optional[str]) -> str:
    """The last line of a traceback: the exception itself."""
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no error recorded"


def _last_line(view: Any, context: Any, model: Any, name: str) -> str:
    return "" if model.last_error is None else _tail(model.last_error)


def _preformatted(view: Any, context: Any, model: Any, name: str) -> Markup:
    value = getattr(model, name)
    return Markup("—") if value is None else Markup('<pre class="havn-error">{}</pre>').format(value)


class DashboardView(_Guarded, BaseView):
    """Payments per delivery state, dead letters, events failed in 24 h, commission paid per day (30 days)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(category=CATEGORY, **kwargs)

    @expose("/")
    def index(self) -> Any:
        """The dashboard page (read-only; every number links to the list behind it)."""
        return self.render("havn_admin/dashboard.html", **dashboard_figures())


def dashboard_figures() -> Dict[str, Any]:
    """What the dashboard shows, read through the services and models of the current app."""
    state = get_state()
    models = state.models
    assert models is not None
    now = utcnow()
    session = state.session
    failed_events = session.execute(
        sa.select(sa.func.count()).select_from(models.WebhookEvent)
        .where(models.WebhookEvent.status == "failed", models.WebhookEvent.received_at >= now - timedelta(hours=24))
    ).scalar_one()
    rows = session.execute(
        sa.select(models.Payment.sent_at, models.Payment.total_commission)
        .where(models.Payment.delivery_state == "sent", models.Payment.sent_at >= now - timedelta(days=30))
    ).all()
    status = state.outbox.status()
    return {"by_state": status["by_state"], "due": status["due"], "dead": status["by_state"].get("dead", 0),
            "failed_events": int(failed_events), "chart": layout_chart(daily_totals(rows, today=now.date())),
            "format_money": format_money, "payments_in_state": payments_in_state}


def payments_in_state(delivery_state: str) -> str:
    """The payments list filtered to one delivery state (the dashboard links there)."""
    return url_for("havn_payments.index_view", flt0_delivery_state_equals=delivery_state)


class ConsoleIndexView(_Guarded, AdminIndexView):
    """The home page of a console ``init_admin`` created itself: straight to the dashboard."""

    @expose("/")
    def index(self) -> Any:
        """Redirect to the HAVN dashboard."""
        return redirect(url_for("havn_dashboard.index"))


def add_views(admin: Admin, app: Any, *, authorize: Optional[Authorize] = None) -> List[BaseView]:
    """Add the dashboard and the three model views of ``app``'s flask_havn to ``admin``; return them."""
    state = get_state(app).require_db()
    models, session = state.models, state.db  # Flask-Admin 2 takes the db object (a bare session is deprecated)
    assert models is not None
    base = form_base_class()
    views: List[BaseView] = [
        DashboardView(name="Dashboard", endpoint="havn_dashboard", url="havn/dashboard"),
        ProjectView(models.Project, session, form_base=base, name="Projects", endpoint="havn_projects",
                    url="havn/projects"),
        PaymentView(models.Payment, session, form_base=base, name="Payments", endpoint="havn_payments",
                    url="havn/payments"),
        EventView(models.WebhookEvent, session, form_base=base, name="Webhook events", endpoint="havn_events",
                  url="havn/events"),
    ]
    for view in views:
        view.havn_authorize = authorize  # type: ignore[attr-defined]
        admin.add_view(view)
    return views


def create_admin(app: Any, *, url: str, name: str, authorize: Optional[Authorize] = None) -> Admin:
    """A new :class:`flask_admin.Admin` on ``app`` at ``url`` whose home is the HAVN dashboard."""
    index = ConsoleIndexView(name="Home", url=url, endpoint="havn_console")
    index.havn_authorize = authorize
    return Admin(app, name=name, url=url, index_view=index, theme=Bootstrap4Theme(base_template="havn_admin/base.html"))


def templates_registered(app: Any) -> None:
    """Make the console's templates (``havn_admin/*.html``) loadable on ``app`` (once)."""
    from flask import Blueprint

    if "havn_admin_templates" not in app.blueprints:
        app.register_blueprint(Blueprint("havn_admin_templates", __name__, template_folder="templates"))

