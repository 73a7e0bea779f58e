"""The report as one self-contained HTML page, laid out for Chromium's print-to-PDF.

Everything is inline: the style sheet, the charts (SVG from ``charts.render_chart``), no script,
no image file, no font to fetch, no link; the one URL in the page is the text of
``Report.source``. Every number goes through ``format_value`` (and every change through
``format_change``), so what the page says is what a test can compute.

Pages are A4 landscape and their count follows from the report alone (``page_count``), because
each group of content starts on a page of its own and is sized to fit it:

* the headline tiles, ``TILES_PER_PAGE`` a page (the first page also has the title, the periods,
  the generation time and the source);
* the charts in the model's order, ``CHARTS_PER_PAGE`` a page;
* the per-platform table, with the competitors table under it for a market report;
* the top posts, one table per ranking, and the notes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TypeVar

from streams.report.charts import render_chart
from streams.report.model import (
    Chart,
    CompetitorRow,
    Period,
    PlatformRow,
    Report,
    Tile,
    TopPost,
    Unit,
)

TILES_PER_PAGE = 24  # 6 columns x 4 rows of fixed-size tiles
CHARTS_PER_PAGE = 2
TABLE_PAGES = 2  # platforms (and the market); top posts and notes

NOT_AVAILABLE = "n/a"
DASH = "\u2013"  # an en dash, between the ends of a span: "1,200\u20131,450"
NO_POSTS_TEXT = "No post had events in the window."
ALL_PLATFORMS = "all"

_T = TypeVar("_T")


# ----------------------------------------------------------------------------------- numbers


def format_value(value: float | None, unit: Unit, currency: str | None = None) -> str:
    """A number of the report as it is printed: "12,345", "4.21 %", "95.0 s", "7.2 min",
    "3.5 h", "1,234.50 EUR", "0.31"; "n/a" for no value (None, or not finite)."""
    if value is None or not math.isfinite(value):
        return NOT_AVAILABLE
    if unit == "count":
        if value == round(value):
            return _signed(f"{round(value):,}")
        return _signed(f"{value:,.2f}")
    if unit == "ratio":
        return _signed(f"{value * 100:,.2f}") + " %"
    if unit == "seconds":
        if abs(value) < 120:
            return _signed(f"{value:,.1f}") + " s"
        if abs(value) < 7200:
            return _signed(f"{value / 60:,.1f}") + " min"
        return _signed(f"{value / 3600:,.1f}") + " h"
    if unit == "money":
        number = _signed(f"{value:,.2f}")
        return f"{number} {currency}" if currency else number
    return _signed(f"{value:,.2f}")  # score


def format_change(tile: Tile) -> str:
    """The tile's change against the previous period: "+1.20 pts" for a ratio (percentage
    points), "+12.3 %" otherwise; "new" when there was nothing to compare with (no previous
    value, or 0), "n/a" when there is no value now."""
    if tile.value is None or not math.isfinite(tile.value):
        return NOT_AVAILABLE
    if tile.previous is None or tile.previous == 0:
        return "new"
    change = tile.change
    if change is None or not math.isfinite(change):
        return NOT_AVAILABLE
    if tile.unit == "ratio":
        return _plus(_signed(f"{change * 100:,.2f}")) + " pts"
    return _plus(_signed(f"{change * 100:,.1f}")) + " %"


def _signed(text: str) -> str:
    """``text`` without the minus of a number that rounds to zero ("-0.00" is "0.00")."""
    if text.startswith("-") and not text.strip("-0.,"):
        return text[1:]
    return text


def _plus(text: str) -> str:
    """A "+" before a positive number, none before zero."""
    if text.startswith("-") or not text.strip("0.,"):
        return text
    return "+" + text


def _trend(tile: Tile) -> str:
    """The CSS class of a tile's change: "better" (green), "worse" (red) or "flat" (grey: no
    change, "new", "n/a")."""
    text = format_change(tile)
    if text.startswith("+"):
        trend = "up"
    elif text.startswith("-"):
        trend = "down"
    else:
        return "flat"
    # Durations are response and resolution times: shorter is the good direction.
    if tile.unit == "seconds":
        return "worse" if trend == "up" else "better"
    return "better" if trend == "up" else "worse"


# -------------------------------------------------------------------------------------- pages


def page_count(report: Report) -> int:
    """How many pages the PDF of ``render_html(report)`` has (see the module docstring)."""
    tile_pages = max(1, math.ceil(len(report.tiles) / TILES_PER_PAGE))
    chart_pages = math.ceil(len(report.charts) / CHARTS_PER_PAGE)
    return tile_pages + chart_pages + TABLE_PAGES


def render_html(report: Report) -> str:
    """The whole report as an HTML5 document."""
    pages = [
        *_tile_pages(report),
        *(_chart_page(group) for group in _chunks(report.charts, CHARTS_PER_PAGE)),
        _platforms_page(report),
        _posts_page(report),
    ]
    body = "\n".join(f'<section class="page {kind}-page">\n{content}\n</section>'
                     for kind, content in pages)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(report.title)}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _tile_pages(report: Report) -> list[tuple[str, str]]:
    generated = _when(report.generated_at)
    header = (
        f"<header>\n<h1>{_e(report.title)}</h1>\n"
        f'<p class="period">{_e(describe_periods(report.period, report.previous))}</p>\n'
        f'<p class="meta">Generated {_e(generated)} UTC from Prometheus at '
        f'<span class="source">{_e(report.source)}</span></p>\n</header>'
    )
    groups = _chunks(report.tiles, TILES_PER_PAGE) or [()]
    pages = []
    for number, group in enumerate(groups):
        grid = '<div class="tiles">\n' + "\n".join(_tile(t) for t in group) + "\n</div>"
        pages.append(("tiles", f"{header}\n{grid}" if number == 0 else grid))
    return pages


def _tile(tile: Tile) -> str:
    value = format_value(tile.value, tile.unit, tile.currency)
    data_value = "" if tile.value is None else repr(float(tile.value))
    previous = ""
    if tile.previous is not None:
        before = format_value(tile.previous, tile.unit, tile.currency)
        previous = f'\n<div class="previous">vs {_e(before)}</div>'
    note = f'\n<div class="note">{_e(tile.note)}</div>' if tile.note else ""
    return (
        f'<div class="tile" data-key="{_e(tile.key)}" data-value="{_e(data_value)}">\n'
        f'<div class="label">{_e(tile.label)}</div>\n'
        f'<div class="value {_value_size(value)}">{_e(value)}</div>\n'
        f'<div class="change {_trend(tile)}">{_e(format_change(tile))}</div>'
        f"{previous}{note}\n</div>"
    )


def _value_size(text: str) -> str:
    """A smaller font for a longer figure, so that it stays on one line of its tile (a wrapped
    figure would read as two in the PDF's text)."""
    if len(text) <= 9:
        return "large"
    if len(text) <= 12:
        return "medium"
    return "small"


def _chart_page(charts: Sequence[Chart]) -> tuple[str, str]:
    figures = []
    for chart in charts:
        empty = "" if any(line.points for line in chart.lines) else " empty"
        figures.append(
            f'<figure class="chart{empty}" data-chart="{_e(chart.key)}">\n'
            f"<h3>{_e(chart.title)}</h3>\n{render_chart(chart)}\n</figure>"
        )
    return "charts", "\n".join(figures)


def _platforms_page(report: Report) -> tuple[str, str]:
    parts = ["<h2>Platforms</h2>", _platform_table(report.platforms)]
    if report.competitors:
        title = f"Market {report.market}" if report.market else "Market"
        parts += [f"<h2>{_e(title)}</h2>", _competitor_table(report.competitors, report.account)]
    return "tables", "\n".join(parts)


def _platform_table(rows: Sequence[PlatformRow]) -> str:
    # The account's total ("all") closes the table, whatever the model's order.
    ordered = [r for r in rows if r.platform != ALL_PLATFORMS]
    ordered += [r for r in rows if r.platform == ALL_PLATFORMS]
    body = []
    for row in ordered:
        total = row.platform == ALL_PLATFORMS
        cells = [
            "All platforms" if total else row.platform,
            format_value(row.impressions, "count"),
            format_value(row.engagements, "count"),
            format_value(row.engagement_rate, "ratio"),
            format_value(row.clicks, "count"),
            format_value(row.click_through, "ratio"),
            format_value(row.conversions, "count"),
            format_value(row.orders, "count"),
            format_value(row.replies, "count"),
            format_value(row.response_ratio, "ratio"),
        ]
        body.append(_row(cells, css="total" if total else ""))
    head = ("Platform", "Impressions", "Engagements", "Engagement rate", "Clicks", "CTR",
            "Conversions", "Orders", "Replies", "Response ratio")
    return _table(head, body, css="platforms")


def _competitor_table(rows: Sequence[CompetitorRow], own_account: str) -> str:
    body = [
        _row(
            [
                row.account,
                format_value(row.impressions, "count"),
                format_value(row.engagement_rate, "ratio"),
                format_value(row.mentions, "count"),
                format_value(row.share_of_voice, "ratio"),
                format_value(row.followers, "count"),
            ],
            css="own" if row.account == own_account else "",
        )
        for row in rows
    ]
    head = ("Account", "Impressions", "Engagement rate", "Mentions", "Share of voice", "Followers")
    return _table(head, body, css="competitors")


def _posts_page(report: Report) -> tuple[str, str]:
    parts = ["<h2>Top posts</h2>"]
    if report.top_posts is None:
        parts.append(f'<p class="unavailable">{_e(report.top_posts_note)}</p>')
    elif not report.top_posts:
        parts.append(f'<p class="unavailable">{_e(NO_POSTS_TEXT)}</p>')
    else:
        rankings: dict[str, list[TopPost]] = {}
        for post in report.top_posts:
            rankings.setdefault(post.ranking, []).append(post)
        tables = [_posts_table(ranking, posts) for ranking, posts in rankings.items()]
        parts.append('<div class="rankings">\n' + "\n".join(tables) + "\n</div>")
        if report.top_posts_note:
            parts.append(f'<p class="unavailable">{_e(report.top_posts_note)}</p>')
    if report.notes:
        items = "\n".join(f"<li>{_e(note)}</li>" for note in report.notes)
        parts.append(f'<h2>Notes</h2>\n<ol class="notes">\n{items}\n</ol>')
    return "posts", "\n".join(parts)


def _posts_table(ranking: str, posts: Iterable[TopPost]) -> str:
    body = [
        _row(
            [
                post.item,
                format_value(post.estimate, "count"),
                f"{format_value(post.lower_bound, 'count')}{DASH}"
                f"{format_value(post.upper_bound, 'count')}",
            ]
        )
        for post in posts
    ]
    table = _table(("Post", "Estimate", "Bounds"), body, css="posts")
    return f'<div class="ranking">\n<h3>By {_e(ranking)}</h3>\n{table}\n</div>'


# ------------------------------------------------------------------------------------ helpers


def _table(head: Sequence[str], rows: Sequence[str], *, css: str) -> str:
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (f'<table class="{css}">\n<thead><tr>{header}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody>\n</table>")


def _row(cells: Sequence[str], *, css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<tr{attr}>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _chunks(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def describe_periods(period: Period, previous: Period) -> str:
    """ "24 Nov 2026 00:00 - 1 Dec 2026 00:00 UTC, compared with 17 Nov - 24 Nov" (with en
    dashes): the previous period without its year when it is the report's, without times when
    it runs midnight to midnight."""
    current = f"{_when(period.start)} {DASH} {_when(period.end)} UTC"
    year = _utc(period.end).year
    midnights = all(_utc(t).time() == datetime.min.time() for t in (previous.start, previous.end))

    def short(at: datetime) -> str:
        at = _utc(at)
        text = f"{at.day} {at:%b}" + ("" if at.year == year else f" {at.year}")
        return text if midnights else f"{text} {at:%H:%M}"

    return f"{current}, compared with {short(previous.start)} {DASH} {short(previous.end)}"


def _when(at: datetime) -> str:
    at = _utc(at)
    return f"{at.day} {at:%b %Y %H:%M}"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _e(text: str) -> str:
    return escape(text, quote=True)


# Sizes are fixed (tiles, chart boxes) so that each page's content fits its page and the page
# count never depends on the data.
_STYLE = """
@page { size: A4 landscape; margin: 12mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
       font-size: 9pt; color: #222222; background: #ffffff; }
section.page + section.page { break-before: page; }
header { margin-bottom: 6mm; }
h1 { font-size: 17pt; margin: 0 0 2mm; }
h2 { font-size: 12pt; margin: 0 0 3mm; }
h3 { font-size: 10pt; margin: 0 0 1.5mm; }
.period { font-size: 11pt; margin: 0 0 1.5mm; }
.meta { color: #666666; margin: 0; }
.tiles { display: grid; grid-template-columns: repeat(6, 1fr); grid-auto-rows: 34mm;
         gap: 3mm; }
.tile { border: 0.3mm solid #d0d0d0; border-radius: 2mm; padding: 2.5mm 3mm;
        overflow: hidden; break-inside: avoid; }
.tile .label { color: #555555; font-size: 8.5pt; white-space: nowrap; overflow: hidden;
               text-overflow: ellipsis; }
.tile .value { font-weight: bold; white-space: nowrap; margin: 1.5mm 0 1mm; }
.tile .value.large { font-size: 16pt; }
.tile .value.medium { font-size: 12.5pt; }
.tile .value.small { font-size: 9.5pt; }
.tile .change { font-size: 8.5pt; white-space: nowrap; }
.tile .note { color: #777777; font-size: 7pt; margin-top: 1mm; }
.better { color: #1a7f37; font-weight: bold; }
.worse { color: #c62828; font-weight: bold; }
.flat { color: #6b7280; font-weight: bold; }
.tile .previous { color: #777777; font-size: 7.5pt; white-space: nowrap; }
figure.chart { margin: 0 0 5mm; break-inside: avoid; }
figure.chart svg { display: block; width: 100%; height: 76mm; }
figure.chart.empty svg { height: 16mm; }
table { border-collapse: collapse; width: 100%; margin-bottom: 7mm; break-inside: avoid; }
th, td { padding: 1.2mm 2mm; border-bottom: 0.2mm solid #dddddd; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; font-weight: bold; }
tr.total td, tr.own td { font-weight: bold; }
tr.total td { border-top: 0.4mm solid #999999; }
.rankings { display: grid; grid-template-columns: repeat(3, 1fr); gap: 6mm; }
.ranking table { margin-bottom: 4mm; }
.unavailable { color: #555555; font-style: italic; }
.notes { margin: 0; padding-left: 5mm; color: #444444; font-size: 8pt; }
.notes li { margin-bottom: 1mm; }
"""
