"""The referral network as a picture: an SVG tree of projects with their codes and commissions."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template

from ..extensions import db, havn
from flask_havn.admin.network import NODE_HEIGHT, NODE_WIDTH, Layout, earnings_by_code, layout_network

__all__ = ["bp", "current_layout"]

bp = Blueprint("network", __name__)


def current_layout() -> Layout:
    """The tree of every project, with the commission each one's referral code has earned."""
    models = havn.models
    projects = db.session.execute(db.select(models.Project)).scalars().all()
    commission_lists = db.session.execute(
        db.select(models.Payment.commissions).where(models.Payment.delivery_state == "sent")).scalars().all()
    return layout_network(projects, earnings_by_code(commission_lists))


@bp.get("/network")
def index() -> Any:
    """The page with the picture inline (so its text can be read, searched and clicked)."""
    return render_template("network.html", layout=current_layout(), node_width=NODE_WIDTH,
                           node_height=NODE_HEIGHT)


@bp.get("/network.svg")
def svg() -> Response:
    """The picture alone, as an SVG document (to download or embed elsewhere)."""
    body = render_template("network.svg", layout=current_layout(), node_width=NODE_WIDTH,
                           node_height=NODE_HEIGHT, standalone=True)
    return Response(body, mimetype="image/svg+xml")
