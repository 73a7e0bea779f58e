"""A report chart as inline SVG, drawn with matplotlib.

``render_chart`` returns an ``<svg>`` element ready to paste into the report's HTML: no XML prolog,
no DOCTYPE, no namespace declarations (the HTML parser puts an inline ``<svg>`` and its children
in the SVG namespace by itself) and so no URL at all, ``width="100%"`` and a ``viewBox`` so that it
scales to the page. Text stays text (``svg.fonttype = "none"``), so the PDF made from the page has
selectable axis labels; element ids carry the chart's key, so several charts share one document
without clashing, and the output is byte-for-byte the same for the same chart.

Figures are made with ``matplotlib.figure.Figure`` directly, never pyplot: no global figure
registry, no GUI backend, and the rc settings apply inside ``rc_context`` only.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, Formatter, FuncFormatter, MaxNLocator

from streams.report.model import Chart, Line

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib >= 3.10; only for the checker

# The Okabe-Ito palette (colour-blind safe) without its black, which would be taken for the axes
# and the text; yellow last, it is the faintest on white.
PALETTE: tuple[str, ...] = (
    "#0072b2",  # blue
    "#e69f00",  # orange
    "#009e73",  # bluish green
    "#d55e00",  # vermillion
    "#cc79a7",  # reddish purple
    "#56b4e9",  # sky blue
    "#f0e442",  # yellow
)
# Past the palette, colours repeat with another dash pattern.
_LINESTYLES = ("-", "--", ":", "-.")

FIGSIZE_IN = (9.0, 2.6)  # wide and low: two charts with their titles fill an A4 landscape page
EMPTY_FIGSIZE_IN = (9.0, 0.8)
NO_DATA_TEXT = "no data in this period"

_INK = "#333333"
_GRID = "#dddddd"
_MAX_X_TICKS = 8
_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text as <text>, not glyph paths: smaller, selectable in the PDF
    "svg.hashsalt": "socialpulse-report",  # ids from content hashes, never random
    "font.family": "DejaVu Sans",
    "font.size": 8.0,
    "axes.edgecolor": _INK,
    "axes.labelcolor": _INK,
    "xtick.color": _INK,
    "ytick.color": _INK,
    "text.color": _INK,
}
# Without these keys set to None the SVG gets a <metadata> block with the Matplotlib URL and
# today's date.
_NO_METADATA: dict[str, str | None] = {"Format": None, "Type": None, "Creator": None, "Date": None}


def render_chart(chart: Chart) -> str:
    """The chart as an inline ``<svg>`` string: one colour of ``PALETTE`` per line (in the
    chart's order), a legend when there is more than one line, dates on the x axis, the y axis in
    the chart's unit. A chart without any point is a small "no data in this period" figure."""
    with matplotlib.rc_context(_RC):
        if not any(line.points for line in chart.lines):
            fig = _empty_figure()
        elif chart.kind == "bar":
            fig = _bar_figure(chart)
        else:
            fig = _line_figure(chart)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    return _inline(buf.getvalue(), chart)


def line_colour(index: int) -> str:
    """The palette colour of a chart's ``index``-th line."""
    return PALETTE[index % len(PALETTE)]


# ------------------------------------------------------------------------------------- figures


def _new_figure(size: tuple[float, float] = FIGSIZE_IN) -> Figure:
    return Figure(figsize=size, layout="constrained", facecolor="white")


def _empty_figure() -> Figure:
    fig = _new_figure(EMPTY_FIGSIZE_IN)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, NO_DATA_TEXT, ha="center", va="center", fontsize=10, color="#777777",
            style="italic", transform=ax.transAxes)
    return fig


def _line_figure(chart: Chart) -> Figure:
    fig = _new_figure()
    ax = fig.add_subplot()
    scale, suffix = _axis_scale(chart)
    for index, line in enumerate(chart.lines):
        if not line.points:
            continue
        xs = [mdates.date2num(_utc(p.at)) for p in line.points]
        ys = [p.value * scale for p in line.points]
        # Markers while points are few enough to tell apart (a week of days): a lone point
        # would be invisible as a line.
        marker = "o" if len(line.points) <= 14 else None
        ax.plot(xs, ys, label=line.label, color=line_colour(index),
                linestyle=_LINESTYLES[index // len(PALETTE) % len(_LINESTYLES)],
                linewidth=1.8, marker=marker, markersize=3.5)
    times = sorted({_utc(p.at) for line in chart.lines for p in line.points})
    _date_axis(ax, [mdates.date2num(t) for t in times], times)
    _finish(fig, ax, chart, suffix)
    return fig


def _bar_figure(chart: Chart) -> Figure:
    """Grouped bars: one group per point in time, one bar per line inside the group."""
    fig = _new_figure()
    ax = fig.add_subplot()
    times = sorted({_utc(p.at) for line in chart.lines for p in line.points})
    slot = {t: i for i, t in enumerate(times)}
    drawn = [(i, line) for i, line in enumerate(chart.lines) if line.points]
    width = 0.8 / len(drawn)
    scale, suffix = _axis_scale(chart)
    for rank, (index, line) in enumerate(drawn):
        offset = (rank - (len(drawn) - 1) / 2) * width
        xs = [slot[_utc(p.at)] + offset for p in line.points]
        ax.bar(xs, [p.value * scale for p in line.points], width=width * 0.95,
               label=line.label, color=line_colour(index), linewidth=0)
    _date_axis(ax, [float(i) for i in range(len(times))], times)
    ax.set_xlim(-0.6, len(times) - 0.4)
    ax.axhline(0, color=_INK, linewidth=0.8)
    _finish(fig, ax, chart, suffix)
    return fig


def _finish(fig: Figure, ax: Axes, chart: Chart, suffix: str) -> None:
    # Values are plotted already scaled to the axis unit (percent, minutes...), so that the
    # locator picks round numbers of that unit.
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(_SuffixFormatter(suffix))
    ax.grid(True, axis="both", color=_GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.margins(x=0.02)
    if len([line for line in chart.lines if line.points]) > 1:
        fig.legend(loc="outside right upper", frameon=False)


# ---------------------------------------------------------------------------------------- axes


def _date_axis(ax: Axes, positions: Sequence[float],
               times: Sequence[datetime]) -> None:
    """Ticks at the points' times, at most ``_MAX_X_TICKS`` of them: "Mon 24 Nov" when points
    are a day or more apart, "14:05" below that; the date instead at midnight, and when the
    points span several days only midnights get a tick, so that each says which day it is."""
    step = min((b - a for a, b in itertools.pairwise(times)), default=timedelta(days=1))
    daily = step >= timedelta(days=1)
    candidates = list(range(len(times)))
    midnights = [i for i in candidates if (times[i].hour, times[i].minute) == (0, 0)]
    if not daily and len(midnights) >= 2:
        candidates = midnights  # several days of sub-day points: a tick per day, at its start
    every = max(1, math.ceil(len(candidates) / _MAX_X_TICKS))
    chosen = candidates[::every]
    seconds = step < timedelta(minutes=1)
    labels = [_date_label(times[i], daily=daily, seconds=seconds) for i in chosen]
    ax.xaxis.set_major_locator(FixedLocator([positions[i] for i in chosen]))
    by_position = dict(zip([positions[i] for i in chosen], labels, strict=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: by_position.get(x, "")))


def _date_label(at: datetime, *, daily: bool, seconds: bool = False) -> str:
    """"Mon 24 Nov", "14:05", or "14:05:30" for points less than a minute apart."""
    if seconds:
        return f"{at:%H:%M:%S}"
    if daily or (at.hour, at.minute) == (0, 0):
        return f"{at:%a} {at.day} {at:%b}"
    return f"{at:%H:%M}"


class _SuffixFormatter(Formatter):
    """Y tick labels: thousands separators, as few decimals as the ticks need, and the unit
    after the number ("12 %", "7.5 min", "1,500 EUR")."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self._format(x, _decimals([x]))

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        decimals = _decimals(values)
        return [self._format(v, decimals) for v in values]

    def _format(self, x: float, decimals: int) -> str:
        text = f"{x:,.{decimals}f}"
        if text.lstrip("-").strip("0.,") == "":
            text = text.lstrip("-")  # no "-0"
        return text + self.suffix


def _axis_scale(chart: Chart) -> tuple[float, str]:
    """What the chart's values are multiplied by on the y axis, and the unit written after the
    ticks: ratios in percent; durations in the one of s, min or h that suits the largest value
    (the thresholds of ``html.format_value``); money with its currency."""
    if chart.unit == "ratio":
        return 100.0, " %"
    if chart.unit == "seconds":
        largest = max((abs(v) for v in _values(chart.lines)), default=0.0)
        if largest < 120:
            return 1.0, " s"
        if largest < 7200:
            return 1 / 60, " min"
        return 1 / 3600, " h"
    if chart.unit == "money" and chart.currency:
        return 1.0, f" {chart.currency}"
    return 1.0, ""


def _decimals(values: Sequence[float], most: int = 4) -> int:
    """The fewest decimals (up to ``most``) that write every value exactly."""
    for decimals in range(most):
        if all(abs(round(v, decimals) - v) <= 1e-9 * max(1.0, abs(v)) for v in values):
            return decimals
    return most


def _values(lines: Sequence[Line]) -> list[float]:
    return [p.value for line in lines for p in line.points if math.isfinite(p.value)]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# ----------------------------------------------------------------------------------------- SVG

_ROOT = re.compile(r"<svg\b[^>]*>")
_VIEWBOX = re.compile(r'viewBox="([^"]+)"')
_ID_OR_REF = re.compile(r'(\bid="|xlink:href="#|url\(#)([^")]+)')


def _inline(document: str, chart: Chart) -> str:
    """matplotlib's SVG document turned into an element for an HTML page."""
    root = _ROOT.search(document)
    viewbox = _VIEWBOX.search(root.group(0)) if root else None
    if root is None or viewbox is None:
        raise ValueError("matplotlib wrote an SVG without a root element or viewBox")
    body = document[root.end():]
    prefix = "c-" + re.sub(r"[^A-Za-z0-9_-]", "_", chart.key) + "-"
    body = _scope_ids(body, prefix).replace('xlink:href="#', 'href="#')
    return f'<svg width="100%" viewBox="{viewbox.group(1)}" role="img">' + body.strip()


def _scope_ids(body: str, prefix: str) -> str:
    """Every id defined in ``body`` and every reference to it, prefixed: matplotlib numbers its
    groups "figure_1", "axes_1"... in every figure, and ids must be unique in a document."""
    defined = set(re.findall(r'\bid="([^"]+)"', body))

    def rename(match: re.Match[str]) -> str:
        name = match.group(2)
        return match.group(1) + (prefix + name if name in defined else name)

    return _ID_OR_REF.sub(rename, body)
