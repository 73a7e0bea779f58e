"""Lifetime totals (SPEC §4): monotonic counters of every additive count, per account and
platform, kept in durable state so that Prometheus's ``increase()`` gives the total of any period.

Two records hold them, each beside the offsets it has applied, so that a replay after a crash
adds each record once to each of them:

* ``Totals`` (``{p}:t:{label}``): what each event adds by itself, by arrival (when the worker
  applies it, not at its ``ts``), under the event's label (its account, or ``_other@market``
  for the overflowed). ``TOTAL_RULES`` say what each type adds.
* ``CareTotals``, in the account core (``AccountCore.care_totals``): what a reply adds when it
  meets its message (answered, resolved, the response time as a cumulative histogram), since
  that match happens in the core and is applied with it.

An account's totals live as long as its label decision: when the decision lapses (no event for
the retention horizon) they are dropped with it, and the account's counters start again from 0
if it returns, which ``increase()`` reads as a counter reset.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from schemas.events import Event
from streams.core.scores import CSAT_SATISFIED, nps_class, polarity

# Counter slots of a TotalsAgg.
(
    T_IMPRESSIONS, T_PAID_IMPRESSIONS, T_LIKES, T_COMMENTS, T_SHARES, T_SAVES, T_CLICKS,
    T_MENTIONS, T_REPLIES, T_FOLLOWS, T_UNFOLLOWS, T_VISITS, T_PAGE_VIEWS, T_BOUNCED_VISITS,
    T_TIMED_VISITS, T_VISIT_SECONDS, T_LEADS, T_POTENTIAL_REACH, T_REVIEWS, T_REVIEW_STARS,
    T_NEEDS_RESPONSE, T_SENTIMENT_N, T_POSITIVE, T_NEGATIVE, T_SENTIMENT_GAIN, T_SENTIMENT_LOSS,
    T_CSAT_N, T_CSAT_GOOD, T_NPS_N, T_NPS_PROMOTERS, T_NPS_DETRACTORS,
) = range(31)
N_TOTALS = 31


class CounterFamily(NamedTuple):
    """One ``social_<key>_total`` family of a slot of ``TotalsAgg.counts``."""

    key: str
    slot: int
    help: str


SLOT_COUNTERS: tuple[CounterFamily, ...] = (
    CounterFamily("impressions", T_IMPRESSIONS, "Impressions since the account's state began."),
    CounterFamily("paid_impressions", T_PAID_IMPRESSIONS, "Paid impressions."),
    CounterFamily("likes", T_LIKES, "Likes."),
    CounterFamily("comments", T_COMMENTS, "Comments."),
    CounterFamily("shares", T_SHARES, "Shares."),
    CounterFamily("saves", T_SAVES, "Saves."),
    CounterFamily("clicks", T_CLICKS, "Clicks."),
    CounterFamily("mentions", T_MENTIONS, "Mentions of the account."),
    CounterFamily("replies", T_REPLIES, "Replies by the brand."),
    CounterFamily("follows", T_FOLLOWS, "Follow events."),
    CounterFamily("unfollows", T_UNFOLLOWS, "Unfollow events."),
    CounterFamily("visits", T_VISITS, "Website visits from social."),
    CounterFamily("page_views", T_PAGE_VIEWS, "Pages viewed in visits."),
    CounterFamily("bounced_visits", T_BOUNCED_VISITS, "Visits that bounced."),
    CounterFamily("timed_visits", T_TIMED_VISITS, "Visits that carry a duration."),
    CounterFamily("visit_duration_seconds", T_VISIT_SECONDS,
                  "Sum of the durations of the timed visits."),
    CounterFamily("leads", T_LEADS, "Qualified leads."),
    CounterFamily("potential_reach", T_POTENTIAL_REACH,
                  "Sum of author_followers over shares and mentions."),
    CounterFamily("reviews", T_REVIEWS, "Reviews."),
    CounterFamily("review_stars", T_REVIEW_STARS, "Sum of the ratings (1-5) of the reviews."),
    CounterFamily("messages_needing_response", T_NEEDS_RESPONSE,
                  "Comments and mentions that need a response."),
    CounterFamily("sentiment_messages", T_SENTIMENT_N,
                  "Comments and mentions that carry a sentiment."),
    CounterFamily("positive_messages", T_POSITIVE, "Messages with a sentiment above 0.25."),
    CounterFamily("negative_messages", T_NEGATIVE, "Messages with a sentiment below -0.25."),
    CounterFamily("sentiment_gain", T_SENTIMENT_GAIN,
                  "Sum of the positive sentiments; mean = (gain - loss) / sentiment_messages."),
    CounterFamily("sentiment_loss", T_SENTIMENT_LOSS,
                  "Sum of the magnitudes of the negative sentiments."),
    CounterFamily("csat_answers", T_CSAT_N, "CSAT answers."),
    CounterFamily("csat_satisfied_answers", T_CSAT_GOOD, "CSAT answers scoring 4 or 5."),
    CounterFamily("nps_answers", T_NPS_N, "NPS answers."),
    CounterFamily("nps_promoters", T_NPS_PROMOTERS, "NPS answers scoring 9 or 10."),
    CounterFamily("nps_detractors", T_NPS_DETRACTORS, "NPS answers scoring 0 to 6."),
)


class KeyedFamily(NamedTuple):
    """A counter family of one of ``TotalsAgg``'s dicts, with the label its keys go under."""

    key: str
    field: str  # the TotalsAgg attribute
    label: str
    help: str


KEYED_COUNTERS: tuple[KeyedFamily, ...] = (
    KeyedFamily("conversions", "goals", "goal", "Non-revenue conversions, per goal."),
    KeyedFamily("orders", "orders", "currency", "Purchases, per currency."),
    KeyedFamily("revenue", "revenue", "currency", "Sum of purchase amounts, per currency."),
    KeyedFamily("spend", "spend", "currency", "Money spent on the platform, per currency."),
)

# Counters the care totals give (``CareTotals``), and the response-time histogram.
CARE_COUNTERS: tuple[tuple[str, str], ...] = (
    ("messages_answered", "Messages needing a response that got their first reply."),
    ("messages_resolved", "Messages needing a response that a reply marked resolved."),
)
RESPONSE_HISTOGRAM = "response_seconds"
RESPONSE_HISTOGRAM_HELP = ("Reply time to comments and mentions, by the reply's arrival: "
                           "histogram_quantile over increase() gives any period's quantiles.")
# Upper bounds (seconds) of the response-time histogram's buckets, +Inf after the last: dense
# around the default SLA of an hour, reaching two days (SPEC §4). A fixed ladder, not one made
# from the configured SLA: a bucket's meaning must not change under a counter that persists.
RESPONSE_BUCKETS: tuple[float, ...] = (
    30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 28800, 43200,
    86400, 172800,
)
N_RESPONSE_BUCKETS = len(RESPONSE_BUCKETS) + 1  # the last one: above every bound


class TotalsAgg:
    """One label's lifetime counts on one platform."""

    __slots__ = ("counts", "goals", "orders", "revenue", "spend")

    def __init__(self) -> None:
        self.counts: list[float] = [0] * N_TOTALS
        self.goals: dict[str, float] = {}
        self.orders: dict[str, float] = {}
        self.revenue: dict[str, float] = {}
        self.spend: dict[str, float] = {}

    def merge(self, other: TotalsAgg) -> None:
        c, o = self.counts, other.counts
        for i in range(N_TOTALS):
            c[i] += o[i]
        for name in ("goals", "orders", "revenue", "spend"):
            mine: dict[str, float] = getattr(self, name)
            for k, v in getattr(other, name).items():
                mine[k] = mine.get(k, 0) + v


class Totals:
    """The ``{p}:t:{label}`` record: a label's lifetime counts per platform, and the offsets
    (input and repartition topic) of the last records they include."""

    __slots__ = ("applied", "applied_rekeyed", "platforms")

    def __init__(self) -> None:
        self.applied = -1
        self.applied_rekeyed = -1
        self.platforms: dict[str, TotalsAgg] = {}

    def platform(self, name: str) -> TotalsAgg:
        agg = self.platforms.get(name)
        if agg is None:
            agg = self.platforms[name] = TotalsAgg()
        return agg

    def encode(self) -> bytes:
        return orjson.dumps({
            "a": self.applied,
            "r": self.applied_rekeyed,
            "p": {k: [v.counts, v.goals, v.orders, v.revenue, v.spend]
                  for k, v in self.platforms.items()},
        })

    @classmethod
    def decode(cls, data: bytes) -> Totals:
        obj = orjson.loads(data)
        t = cls()
        t.applied, t.applied_rekeyed = obj["a"], obj["r"]
        for name, (counts, goals, orders, revenue, spend) in obj["p"].items():
            agg = t.platforms[name] = TotalsAgg()
            agg.counts, agg.goals, agg.orders, agg.revenue, agg.spend = (
                counts, goals, orders, revenue, spend)
        return t


class CareTotals:
    """One platform's lifetime care counts in an account core: messages answered and resolved
    (under the message's platform), and response times (under the reply's) as per-bucket counts
    of ``RESPONSE_BUCKETS`` with their sum."""

    __slots__ = ("answered", "buckets", "resolved", "response_sum")

    def __init__(self) -> None:
        self.answered: float = 0
        self.resolved: float = 0
        self.buckets: list[float] = [0] * N_RESPONSE_BUCKETS
        self.response_sum = 0.0

    def observe(self, seconds: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le)
        self.buckets[bisect_left(RESPONSE_BUCKETS, seconds)] += 1
        self.response_sum += seconds

    @property
    def responses(self) -> float:
        return sum(self.buckets)

    def cumulative(self) -> list[float]:
        """The ``le`` counts, one per bound and the last for +Inf."""
        out, running = [], 0.0
        for n in self.buckets:
            running += n
            out.append(running)
        return out

    def merge(self, other: CareTotals) -> None:
        self.answered += other.answered
        self.resolved += other.resolved
        self.response_sum += other.response_sum
        for i, n in enumerate(other.buckets):
            self.buckets[i] += n

    def to_obj(self) -> list[Any]:
        return [self.answered, self.resolved, self.buckets, self.response_sum]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> CareTotals:
        c = cls()
        c.answered, c.resolved, c.buckets, c.response_sum = obj
        return c


TotalsRule = Callable[[TotalsAgg, Event], None]


def _slot(slot: int) -> TotalsRule:
    def rule(a: TotalsAgg, ev: Event) -> None:
        a.counts[slot] += 1

    return rule


def _sentiment(c: list[float], s: float | None) -> None:
    if s is not None:
        c[T_SENTIMENT_N] += 1
        if s > 0:
            c[T_SENTIMENT_GAIN] += s
        else:
            c[T_SENTIMENT_LOSS] -= s
        side = polarity(s)
        if side > 0:
            c[T_POSITIVE] += 1
        elif side < 0:
            c[T_NEGATIVE] += 1


def _impression(a: TotalsAgg, ev: Event) -> None:
    a.counts[T_IMPRESSIONS] += 1
    if ev.paid:
        a.counts[T_PAID_IMPRESSIONS] += 1


def _comment(a: TotalsAgg, ev: Event) -> None:
    c = a.counts
    c[T_COMMENTS] += 1
    if ev.needs_response:
        c[T_NEEDS_RESPONSE] += 1
    _sentiment(c, ev.sentiment)


def _mention(a: TotalsAgg, ev: Event) -> None:
    c = a.counts
    c[T_MENTIONS] += 1
    if ev.needs_response:
        c[T_NEEDS_RESPONSE] += 1
    if ev.author_followers is not None:
        c[T_POTENTIAL_REACH] += ev.author_followers
    _sentiment(c, ev.sentiment)


def _share(a: TotalsAgg, ev: Event) -> None:
    a.counts[T_SHARES] += 1
    if ev.author_followers is not None:
        a.counts[T_POTENTIAL_REACH] += ev.author_followers


def _visit(a: TotalsAgg, ev: Event) -> None:
    c = a.counts
    c[T_VISITS] += 1
    c[T_PAGE_VIEWS] += ev.pages or 0
    if ev.bounced:
        c[T_BOUNCED_VISITS] += 1
    if ev.duration_seconds is not None:
        c[T_TIMED_VISITS] += 1
        c[T_VISIT_SECONDS] += ev.duration_seconds


def _add(d: dict[str, float], key: str, value: float) -> None:
    d[key] = d.get(key, 0) + value


def _conversion(a: TotalsAgg, ev: Event) -> None:
    _add(a.goals, ev.goal or "", 1)


def _purchase(a: TotalsAgg, ev: Event) -> None:
    cur = ev.currency or ""
    _add(a.orders, cur, 1)
    _add(a.revenue, cur, ev.amount or 0.0)


def _spend(a: TotalsAgg, ev: Event) -> None:
    _add(a.spend, ev.currency or "", ev.amount or 0.0)


def _survey(a: TotalsAgg, ev: Event) -> None:
    c = a.counts
    score = ev.score or 0
    if ev.survey == "csat":
        c[T_CSAT_N] += 1
        c[T_CSAT_GOOD] += score >= CSAT_SATISFIED
    else:
        c[T_NPS_N] += 1
        kind = nps_class(score)
        c[T_NPS_PROMOTERS] += kind > 0
        c[T_NPS_DETRACTORS] += kind < 0


def _review(a: TotalsAgg, ev: Event) -> None:
    a.counts[T_REVIEWS] += 1
    a.counts[T_REVIEW_STARS] += ev.rating or 0


def _present(a: TotalsAgg, ev: Event) -> None:
    """A followers snapshot counts nothing, but its platform's counters exist from then on."""


TOTAL_RULES: dict[str, TotalsRule] = {
    "followers": _present,
    "impression": _impression,
    "like": _slot(T_LIKES),
    "save": _slot(T_SAVES),
    "comment": _comment,
    "share": _share,
    "click": _slot(T_CLICKS),
    "mention": _mention,
    "reply": _slot(T_REPLIES),
    "follow": _slot(T_FOLLOWS),
    "unfollow": _slot(T_UNFOLLOWS),
    "visit": _visit,
    "lead": _slot(T_LEADS),
    "conversion": _conversion,
    "purchase": _purchase,
    "spend": _spend,
    "survey": _survey,
    "review": _review,
}
