"""Commission paid per day as a bar chart laid out for a server-rendered SVG (pure Python).

The dashboard draws it inline: no JavaScript charting library and no CDN, so
the console works offline and under a strict Content-Security-Policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Dict, Iterable, List, Optional, Tuple

__all__ = ["Bar", "Chart", "daily_totals", "layout_chart"]

WIDTH = 760
HEIGHT = 220
#: Room for the axis labels (left) and the day labels (bottom), in SVG units.
LEFT = 70
BOTTOM = 30
TOP = 12


@dataclass(frozen=True)
class Bar:
    """One day's bar; ``x``/``y`` is its top-left corner, ``cents`` the commission paid that day (USD)."""

    day: date
    cents: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    """Everything the SVG template draws: the bars, the largest value (top of the axis), the size."""

    bars: List[Bar]
    maximum: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = BOTTOM
    top: int = TOP


def daily_totals(rows: Iterable[Tuple[Optional[datetime], Optional[int]]], *, today: date,
                 days: int = 30) -> Dict[date, int]:
    """Sum ``(sent_at, total_commission)`` rows per day over the ``days`` days ending ``today`` (every day present)."""
    first = today - timedelta(days=days - 1)
    totals = {first + timedelta(days=offset): 0 for offset in range(days)}
    for sent_at, cents in rows:
        if sent_at is None or not cents:
            continue
        day = sent_at.date()
        if day in totals:
            totals[day] += int(cents)
    return totals


def layout_chart(totals: Dict[date, int]) -> Chart:
    """Bars for ``totals`` (day → cents), oldest on the left, scaled to the largest day."""
    days = sorted(totals)
    maximum = max(totals.values(), default=0)
    plot_width = WIDTH - LEFT - 10
    plot_height = HEIGHT - BOTTOM - TOP
    slot = plot_width / max(1, len(days))
    bars = []
    for index, day in enumerate(days):
        cents = totals[day]
        height = 0.0 if maximum == 0 else plot_height * cents / maximum
        bars.append(Bar(day=day, cents=cents, x=round(LEFT + index * slot + slot * 0.15, 2),
                        y=round(TOP + plot_height - height, 2), width=round(slot * 0.7, 2), height=round(height, 2)))
    return Chart(bars=bars, maximum=maximum, total=sum(totals.values()))
