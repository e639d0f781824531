"""ShopEasy's referral network picture uses flask_havn's layout (:mod:`flask_havn.admin.network`)."""
from __future__ import annotations

from flask_havn.admin.network import (COLUMN, MARGIN, NODE_HEIGHT, NODE_WIDTH, ROW, Edge, Layout, Node,
                                      earnings_by_code, layout_network)

__all__ = ["Node", "Edge", "Layout", "layout_network", "earnings_by_code",
           "NODE_WIDTH", "NODE_HEIGHT", "COLUMN", "ROW", "MARGIN"]
