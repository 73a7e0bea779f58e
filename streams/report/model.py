"""The report as plain data: what ``collect`` reads from Prometheus and ``html`` lays out.

Every number is already final here (totals over the period, daily points, the previous period's
value beside each headline figure); the renderers only format and draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

# How a value is formatted: a count ("12,345"), a ratio shown as a percentage ("4.21 %"), a
# duration ("7.2 min"), money with its currency ("1,234.50 EUR"), a plain score ("0.31", NPS).
Unit = Literal["count", "ratio", "seconds", "money", "score"]


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open span of time [start, end), both UTC-aware."""

    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def before(self) -> Period:
        """The period of the same length that ends where this one starts."""
        return Period(self.start - self.length, self.start)


@dataclass(frozen=True, slots=True)
class Tile:
    """One headline figure: its value over the period and over the previous period (None: no
    data, e.g. a ratio whose denominator is 0)."""

    key: str  # stable id, e.g. "impressions", "roi_ratio:EUR"
    label: str  # "Impressions", "ROI (EUR)"
    value: float | None
    previous: float | None
    unit: Unit
    currency: str | None = None
    note: str = ""  # a short qualifier shown under the figure ("average daily reach")

    @property
    def change(self) -> float | None:
        """The change against the previous period: for ratios in percentage points (0.012 is
        +1.2 points), for everything else relative (0.25 is +25 %); None when not comparable."""
        if self.value is None or self.previous is None:
            return None
        if self.unit == "ratio":
            return self.value - self.previous
        if self.previous == 0:
            return None
        return (self.value - self.previous) / abs(self.previous)


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime  # the end of the step the value covers (a day, for a week's report)
    value: float


@dataclass(frozen=True, slots=True)
class Line:
    label: str  # a platform, an account, a currency, a quantile
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    key: str  # stable id: "impressions_reach", "engagement_rate", "share_of_voice", "money:EUR",
    #           "care"
    title: str
    unit: Unit
    lines: tuple[Line, ...]
    kind: Literal["line", "bar"] = "line"
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class PlatformRow:
    """One platform's totals over the period (``platform == "all"``: the account's)."""

    platform: str
    impressions: float
    engagements: float
    engagement_rate: float | None
    clicks: float
    click_through: float | None
    conversions: float
    orders: float
    replies: float
    response_ratio: float | None


@dataclass(frozen=True, slots=True)
class CompetitorRow:
    """One account of the market over the period (the report's own account included)."""

    account: str
    impressions: float
    engagement_rate: float | None
    mentions: float
    share_of_voice: float | None
    followers: float | None


@dataclass(frozen=True, slots=True)
class TopPost:
    ranking: str  # "engagements", "impressions", "clicks"
    item: str  # the post id
    estimate: int
    lower_bound: int
    upper_bound: int


@dataclass(frozen=True, slots=True)
class Report:
    account: str
    market: str | None  # set for a market report: the account and its competitors
    period: Period
    previous: Period
    generated_at: datetime
    source: str  # the Prometheus base URL the figures come from
    step: timedelta  # what one chart point covers
    tiles: tuple[Tile, ...]
    charts: tuple[Chart, ...]
    platforms: tuple[PlatformRow, ...]
    competitors: tuple[CompetitorRow, ...] = ()
    # None: not available (the reason is in ``top_posts_note``); () : no post had events
    top_posts: tuple[TopPost, ...] | None = None
    top_posts_note: str = ""
    notes: tuple[str, ...] = field(default=())  # footnotes: what a figure means, caveats

    @property
    def title(self) -> str:
        scope = f"{self.account} and its market {self.market}" if self.market else self.account
        return f"socialpulse report: {scope}"


class ReportError(Exception):
    """A report that cannot be made, said in one line (Prometheus unreachable, no data for the
    account, a period older than Prometheus keeps, no Chromium): the command prints it and exits
    with code 2."""
