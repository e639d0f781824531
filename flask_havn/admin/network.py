"""A referral network as a tree laid out for an SVG picture (pure Python, no Flask, no Flask-Admin).

Projects hang under the project whose referral code they were referred with.
A project whose upline code belongs to no project shown (referred from outside
the picture, or not synced yet) is a root and says so. Leaves take consecutive
columns; a parent sits centred over its children; depth gives the row. Used by
the operator console (a project's downline) and by the example app (the whole network).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

__all__ = ["Node", "Edge", "Layout", "layout_network", "earnings_by_code",
           "NODE_WIDTH", "NODE_HEIGHT", "COLUMN", "ROW", "MARGIN"]

#: Characters XML 1.0 forbids (an SVG with one of them does not display at all).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

NODE_WIDTH = 190
NODE_HEIGHT = 74
#: Distance between two columns / two rows, in SVG units.
COLUMN = 220
ROW = 124
MARGIN = 20


@dataclass
class Node:
    """One project in the picture; ``x``/``y`` is its box's top-left corner."""

    project_id: int
    name: str
    referral_code: Optional[str]
    upline_referral_code: Optional[str]
    sync_state: str
    earned: int
    depth: int = 0
    x: float = 0.0
    y: float = 0.0
    #: The upline code when it belongs to no project shown (an outside referrer).
    outside_upline: Optional[str] = None
    children: List["Node"] = field(default_factory=list, repr=False)

    @property
    def center_x(self) -> float:
        return self.x + NODE_WIDTH / 2


@dataclass(frozen=True)
class Edge:
    """A line from an upline's box (bottom centre) to a downline's box (top centre)."""

    parent_id: int
    child_id: int
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class Layout:
    """Everything the SVG template draws."""

    nodes: List[Node]
    edges: List[Edge]
    width: float
    height: float


def earnings_by_code(commission_lists: Iterable[Optional[Sequence[Mapping[str, Any]]]]) -> Dict[str, int]:
    """Total commission (USD cents) per referral code, over payments' ``commissions`` lists."""
    totals: Dict[str, int] = {}
    for commissions in commission_lists:
        for item in commissions or ():
            code = item.get("referral_code")
            amount = item.get("amount")
            if isinstance(code, str) and isinstance(amount, int) and not isinstance(amount, bool):
                key = code.upper()
                totals[key] = totals.get(key, 0) + amount
    return totals


def layout_network(projects: Iterable[Any], earnings: Mapping[str, int]) -> Layout:
    """Lay out ``projects`` (objects with id, name, referral_code, upline_referral_code, sync_state)."""
    nodes = [
        Node(project_id=p.id, name=_NOT_XML.sub("", p.name or ""), referral_code=p.referral_code,
             upline_referral_code=_NOT_XML.sub("", p.upline_referral_code or "") or None, sync_state=p.sync_state,
             earned=earnings.get((p.referral_code or "").upper(), 0))
        for p in sorted(projects, key=lambda p: p.id)
    ]
    by_code = {n.referral_code.upper(): n for n in nodes if n.referral_code}
    roots: List[Node] = []
    for node in nodes:
        parent = by_code.get((node.upline_referral_code or "").upper())
        if parent is None or parent is node or _is_ancestor(node, parent, by_code):
            if node.upline_referral_code:
                node.outside_upline = node.upline_referral_code
            roots.append(node)
        else:
            parent.children.append(node)

    next_column = [0]
    edges: List[Edge] = []

    def place(node: Node, depth: int) -> None:
        node.depth = depth
        node.y = MARGIN + depth * ROW
        if not node.children:
            node.x = MARGIN + next_column[0] * COLUMN
            next_column[0] += 1
            return
        for child in node.children:
            place(child, depth + 1)
        node.x = (node.children[0].x + node.children[-1].x) / 2
        for child in node.children:
            edges.append(Edge(node.project_id, child.project_id, node.center_x, node.y + NODE_HEIGHT,
                              child.center_x, child.y))

    for root in roots:
        place(root, 0)
    depth = max((n.depth for n in nodes), default=0)
    width = MARGIN * 2 + max(1, next_column[0]) * COLUMN - (COLUMN - NODE_WIDTH)
    height = MARGIN * 2 + depth * ROW + NODE_HEIGHT
    return Layout(nodes=nodes, edges=edges, width=width, height=height)


def _is_ancestor(node: Node, candidate: Node, by_code: Mapping[str, Node]) -> bool:
    """True if ``node`` is already above ``candidate`` (hanging it there would close a loop)."""
    seen = set()
    current: Optional[Node] = candidate
    while current is not None and current.project_id not in seen:
        if current is node:
            return True
        seen.add(current.project_id)
        current = by_code.get((current.upline_referral_code or "").upper())
    return False
