"""The console's pure-Python parts (no Flask-Admin needed): the chart layout, money display, shipped templates."""
from __future__ import annotations

import configparser
import fnmatch
from datetime import date, datetime
from pathlib import Path

from flask_havn.admin.chart import daily_totals, layout_chart
from flask_havn.admin.display import format_money

ROOT = Path(__file__).resolve().parent.parent


def test_daily_totals_cover_every_day_of_the_window_and_nothing_outside() -> None:
    today = date(2026, 3, 31)
    rows = [(datetime(2026, 3, 31, 23, 59), 150), (datetime(2026, 3, 31, 0, 1), 50), (datetime(2026, 3, 2), 7),
            (datetime(2026, 3, 1, 12), 999), (None, 5), (datetime(2026, 3, 10), None)]
    totals = daily_totals(rows, today=today, days=30)
    assert len(totals) == 30 and min(totals) == date(2026, 3, 2) and max(totals) == today
    assert totals[today] == 200 and totals[date(2026, 3, 2)] == 7
    assert sum(totals.values()) == 207  # March 1st is outside the 30 days, None rows count for nothing


def test_bars_scale_to_the_largest_day_and_an_empty_month_draws_flat() -> None:
    chart = layout_chart({date(2026, 1, 1): 100, date(2026, 1, 2): 50, date(2026, 1, 3): 0})
    tallest, half, empty = chart.bars
    assert (chart.maximum, chart.total) == (100, 150)
    assert half.height * 2 == tallest.height and empty.height == 0
    assert tallest.x < half.x < empty.x  # oldest on the left
    assert all(bar.height == 0 for bar in layout_chart({date(2026, 1, 1): 0}).bars)


def test_money_is_shown_in_the_currencys_own_decimals() -> None:
    assert format_money(123456, "USD") == "1,234.56 USD"
    assert format_money(5000, "IDR") == "5,000 IDR"
    assert format_money(None) == "—"
    assert format_money(12, "XXX") == "12 (minor units) XXX"  # a currency HAVN does not accept never breaks a page


def test_every_console_template_ships_as_package_data() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    patterns = [p.strip() for p in config["options.package_data"]["flask_havn.admin"].split(",")]
    package = ROOT / "flask_havn" / "admin"
    templates = [str(p.relative_to(package)) for p in package.joinpath("templates").rglob("*") if p.is_file()]
    assert templates and all(any(fnmatch.fnmatch(t, pattern) for pattern in patterns) for t in templates), templates
