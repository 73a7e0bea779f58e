"""Every KPI family socialpulse exports, declared once (SPEC §4): name, help, labels, kind.

Pure data: KPI gauges are not prometheus-client objects. ``streams.core.series`` names its series
by these families and ``streams.export`` builds them into metric families on every scrape. The
pipeline's own health counters are declared in ``streams.export.health``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streams.core.totals import (
    CARE_COUNTERS,
    KEYED_COUNTERS,
    RESPONSE_HISTOGRAM,
    RESPONSE_HISTOGRAM_HELP,
    SLOT_COUNTERS,
)

Scope = Literal["window", "current", "campaign", "agent", "team", "total"]
Kind = Literal["gauge", "summary", "counter", "histogram"]
# Scopes whose second label names something other than a platform (``social_<scope>_<kpi>``).
NAMED_SCOPES: tuple[Scope, ...] = ("campaign", "agent", "team")


@dataclass(frozen=True, slots=True)
class KpiMetric:
    """One exported KPI family; ``key`` is the name in ``streams.core.kpis`` results."""

    key: str
    help: str
    scope: Scope = "window"
    extra: tuple[str, ...] = ()
    # "summary": quantile samples plus <name>_count and <name>_sum (promtool rejects a gauge
    # with a quantile label); "counter": the one sample <name> ends in ``_total``;
    # "histogram": <name>_bucket with ``le``, <name>_count and <name>_sum.
    kind: Kind = "gauge"

    @property
    def name(self) -> str:
        prefix = f"social_{self.scope}_" if self.scope in NAMED_SCOPES else "social_"
        return prefix + self.key + ("_total" if self.kind == "counter" else "")

    @property
    def labels(self) -> tuple[str, ...]:
        if self.scope == "total":
            # ``partition`` is empty (no label) but for "_other", which stands for the
            # overflowed accounts of each partition: one series per partition, so that a
            # partition that moves to another worker moves its own counter (SPEC §4).
            return ("account", "platform", "partition", *self.extra)
        if self.scope in NAMED_SCOPES:
            return ("account", self.scope, "window", *self.extra)
        if self.scope == "current":
            return ("account", "platform", *self.extra)
        return ("account", "platform", "window", *self.extra)


_W: list[tuple[str, str, tuple[str, ...]]] = [
    # Reach
    ("impressions", "Impressions in the window.", ()),
    ("paid_impressions", "Paid impressions in the window.", ()),
    ("organic_impressions", "Organic (not paid) impressions in the window.", ()),
    ("reach", "Distinct users who saw an impression (HyperLogLog estimate).", ()),
    ("audience_growth_ratio", "(follows - unfollows) / followers at window start.", ()),
    ("potential_reach", "Sum of author_followers over shares and mentions.", ()),
    ("share_of_voice_ratio", "Mentions of the account / all mentions in its market.", ()),
    ("visits", "Website visits from social.", ()),
    ("unique_visitors", "Distinct visitors (HyperLogLog estimate).", ()),
    ("page_views", "Pages viewed in visits.", ()),
    ("pages_per_visit", "Page views / visits.", ()),
    ("average_visit_duration_seconds", "Mean duration of visits that carry one.", ()),
    # Engagement
    ("likes", "Likes in the window.", ()),
    ("comments", "Comments in the window.", ()),
    ("shares", "Shares in the window.", ()),
    ("saves", "Saves in the window.", ()),
    ("clicks", "Clicks in the window.", ()),
    ("mentions", "Mentions of the account in the window.", ()),
    ("engagements", "likes + comments + shares + saves.", ()),
    ("engagement_rate_ratio", "Engagements / impressions.", ()),
    ("engagement_rate_by_reach_ratio", "Engagements / reach.", ()),
    ("average_engagement_ratio", "Engagements / followers.", ()),
    ("applause_ratio", "(likes + saves) / followers.", ()),
    ("amplification_ratio", "Shares / followers.", ()),
    ("virality_ratio", "Shares / impressions.", ()),
    ("click_through_ratio", "Clicks / impressions.", ()),
    # Conversion and money
    ("conversions", "Non-revenue conversions, per goal and goal=\"all\".", ("goal",)),
    ("conversion_ratio", "(conversions + purchases) / clicks.", ()),
    ("bounce_ratio", "Bounced visits / visits.", ()),
    ("leads", "Qualified leads.", ()),
    ("lead_conversion_ratio", "Purchases / leads.", ()),
    ("orders", "Purchases.", ()),
    ("revenue", "Sum of purchase amounts, per currency.", ("currency",)),
    ("average_order_value", "Revenue / orders, per currency.", ("currency",)),
    ("spend", "Money spent on the platform, per currency.", ("currency",)),
    ("cost_per_click", "Spend / clicks, per currency.", ("currency",)),
    ("cost_per_mille", "Spend / impressions x 1000, per currency.", ("currency",)),
    ("cost_per_lead", "Spend / leads, per currency.", ("currency",)),
    ("roi_ratio", "(revenue - spend) / spend, per currency.", ("currency",)),
    # Care and satisfaction
    ("response_time_seconds", "Reply time to comments and mentions (DDSketch quantile).",
     ("quantile",)),
    ("response_time_business_seconds",
     "Reply time counting only the account's business hours (DDSketch quantile).", ("quantile",)),
    ("replies", "Replies by the brand in the window.", ()),
    ("needs_response", "Comments and mentions needing a response in the window.", ()),
    ("response_ratio", "Answered / needing response.", ()),
    ("resolution_ratio", "Resolved by a reply / needing response.", ()),
    ("sentiment_score", "Mean sentiment of comments and mentions that carry one.", ()),
    ("net_sentiment_ratio", "(positive - negative) / (positive + negative).", ()),
    ("csat_ratio", "CSAT answers scoring 4 or 5 / CSAT answers.", ()),
    ("nps", "Net promoter score: (promoters - detractors) / answers x 100.", ()),
    ("reviews", "Reviews in the window.", ()),
    ("average_rating", "Mean review rating.", ()),
]

_C: list[tuple[str, str, tuple[str, ...]]] = [
    ("followers", "Followers: last polled count plus follows minus unfollows since.", ()),
    ("customer_lifetime_value", "Revenue per distinct customer over the account's history.",
     ("currency",)),
    ("pending_responses", "Messages needing a response that have none yet.", ()),
    ("overdue_responses", "Pending responses older than the SLA.", ()),
]

_K: list[tuple[str, str, tuple[str, ...]]] = [
    ("impressions", "Campaign impressions in the window.", ()),
    ("clicks", "Campaign clicks in the window.", ()),
    ("conversions", "Campaign non-revenue conversions in the window.", ()),
    ("revenue", "Campaign revenue, per currency.", ("currency",)),
    ("spend", "Campaign spend, per currency.", ("currency",)),
    ("click_through_ratio", "Campaign clicks / impressions.", ()),
    ("cost_per_click", "Campaign spend / clicks, per currency.", ("currency",)),
    ("roi_ratio", "Campaign (revenue - spend) / spend, per currency.", ("currency",)),
]

# Per care agent and per team (SPEC §3, care by staff): the same four for each.
_S: list[tuple[str, str, tuple[str, ...]]] = [
    ("replies", "Replies by the {0} in the window.", ()),
    ("resolution_ratio", "Replies of the {0} marked resolved / replies of the {0}.", ()),
    ("response_time_seconds", "Reply time of the {0}'s replies (DDSketch quantile).",
     ("quantile",)),
    ("response_time_business_seconds",
     "Reply time of the {0}'s replies in business hours (DDSketch quantile).", ("quantile",)),
]


def _kind(extra: tuple[str, ...]) -> Literal["gauge", "summary"]:
    return "summary" if "quantile" in extra else "gauge"


WINDOW_KPIS: tuple[KpiMetric, ...] = tuple(
    KpiMetric(k, h, "window", e, _kind(e)) for k, h, e in _W
)
CURRENT_KPIS: tuple[KpiMetric, ...] = tuple(KpiMetric(k, h, "current", e) for k, h, e in _C)
CAMPAIGN_KPIS: tuple[KpiMetric, ...] = tuple(KpiMetric(k, h, "campaign", e) for k, h, e in _K)
AGENT_KPIS: tuple[KpiMetric, ...] = tuple(
    KpiMetric(k, h.format("agent"), "agent", e, _kind(e)) for k, h, e in _S)
TEAM_KPIS: tuple[KpiMetric, ...] = tuple(
    KpiMetric(k, h.format("team"), "team", e, _kind(e)) for k, h, e in _S)
# Lifetime totals (SPEC §4, ``streams.core.totals``): counters, and one histogram.
TOTAL_KPIS: tuple[KpiMetric, ...] = (
    *(KpiMetric(c.key, c.help, "total", (), "counter") for c in SLOT_COUNTERS),
    *(KpiMetric(c.key, c.help, "total", (c.label,), "counter") for c in KEYED_COUNTERS),
    *(KpiMetric(key, h, "total", (), "counter") for key, h in CARE_COUNTERS),
    KpiMetric(RESPONSE_HISTOGRAM, RESPONSE_HISTOGRAM_HELP, "total", (), "histogram"),
)
ALL_KPIS: tuple[KpiMetric, ...] = (
    WINDOW_KPIS + CURRENT_KPIS + CAMPAIGN_KPIS + AGENT_KPIS + TEAM_KPIS + TOTAL_KPIS)
SUMMARY_PARTS: tuple[str, ...] = ("_count", "_sum")
HISTOGRAM_BUCKETS = "_bucket"


def part_names(m: KpiMetric) -> list[tuple[str, tuple[str, ...]]]:
    """The sample names of a family with the label names of each, in exposition order."""
    if m.kind == "summary":
        base = tuple(x for x in m.labels if x != "quantile")
        return [(m.name, m.labels), *((m.name + part, base) for part in SUMMARY_PARTS)]
    if m.kind == "histogram":
        return [(m.name + HISTOGRAM_BUCKETS, (*m.labels, "le")),
                *((m.name + part, m.labels) for part in SUMMARY_PARTS)]
    return [(m.name, m.labels)]


def sample_metrics() -> dict[str, KpiMetric]:
    """Every sample name a KPI family produces, mapped to a KpiMetric describing its labels.

    A summary's ``_count`` and ``_sum`` samples carry the family's labels without ``quantile``;
    a histogram's ``_bucket`` samples add ``le``. A counter's one sample is its name.
    """
    out: dict[str, KpiMetric] = {}
    for m in ALL_KPIS:
        if m.kind == "summary":
            out[m.name] = m
            base = tuple(x for x in m.extra if x != "quantile")
            for part in SUMMARY_PARTS:
                out[m.name + part] = KpiMetric(m.key + part, m.help, m.scope, base)
        elif m.kind == "histogram":
            out[m.name + HISTOGRAM_BUCKETS] = KpiMetric(
                m.key + HISTOGRAM_BUCKETS, m.help, m.scope, (*m.extra, "le"))
            for part in SUMMARY_PARTS:
                out[m.name + part] = KpiMetric(m.key + part, m.help, m.scope, m.extra)
        else:
            out[m.name] = m
    return out
