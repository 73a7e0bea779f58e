"""KPI formulas of SPEC §3 as plain functions over merged aggregates.

Each function returns ``(kpi key, extra label values, value)`` rows. A ratio whose denominator is
zero yields no row at all (SPEC §3: absent, not 0 and not NaN).
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.core.aggregates import (
    BOUNCED,
    C_CLICKS,
    C_CONVERSIONS,
    C_IMPRESSIONS,
    CLICKS,
    COMMENTS,
    CONVERSIONS,
    CSAT_GOOD,
    CSAT_N,
    FOLLOWS,
    IMPRESSIONS,
    LEADS,
    LIKES,
    MENTIONS,
    NEEDS_RESPONSE,
    NPS_DETRACTORS,
    NPS_N,
    NPS_PROMOTERS,
    ORDERS,
    PAGE_VIEWS,
    PAID_IMPRESSIONS,
    POTENTIAL_REACH,
    RATING_SUM,
    REPLIES,
    REVIEWS,
    SAVES,
    SENTIMENT_N,
    SENTIMENT_NEG,
    SENTIMENT_POS,
    SENTIMENT_SUM,
    SHARES,
    UNFOLLOWS,
    VISIT_DURATION_N,
    VISIT_DURATION_SUM,
    VISITS,
    CampaignAgg,
    PlatformAgg,
)
from streams.core.labels import ALL_GOALS, RESPONSE_QUANTILES
from streams.core.sketches import Quantiles

Row = tuple[str, tuple[str, ...], float]
NO_LABELS: tuple[str, ...] = ()


def ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _put(
    rows: list[Row], key: str, value: float | None, extra: tuple[str, ...] = NO_LABELS
) -> None:
    if value is not None:
        rows.append((key, extra, float(value)))


def window_rows(
    agg: PlatformAgg,
    *,
    answered: float,
    resolved: float,
    response: Quantiles | None,
    followers: float | None,
    market_mentions: float,
    business: Quantiles | None = None,
) -> list[Row]:
    """Every windowed KPI of one (account, platform or all, window)."""
    c = agg.counts
    rows: list[Row] = []
    impressions = c[IMPRESSIONS]
    reach = agg.reach.estimate() if agg.reach is not None else 0.0
    engagements = c[LIKES] + c[COMMENTS] + c[SHARES] + c[SAVES]
    visits = c[VISITS]
    clicks = c[CLICKS]
    leads = c[LEADS]
    orders = c[ORDERS]
    fol = followers if followers is not None and followers > 0 else 0.0
    # Reach
    _put(rows, "impressions", impressions)
    _put(rows, "paid_impressions", c[PAID_IMPRESSIONS])
    _put(rows, "organic_impressions", impressions - c[PAID_IMPRESSIONS])
    _put(rows, "reach", reach)
    net = c[FOLLOWS] - c[UNFOLLOWS]
    if followers is not None:
        _put(rows, "audience_growth_ratio", ratio(net, followers - net))
    _put(rows, "potential_reach", c[POTENTIAL_REACH])
    _put(rows, "share_of_voice_ratio", ratio(c[MENTIONS], market_mentions))
    _put(rows, "visits", visits)
    _put(rows, "unique_visitors", agg.visitors.estimate() if agg.visitors is not None else 0.0)
    _put(rows, "page_views", c[PAGE_VIEWS])
    _put(rows, "pages_per_visit", ratio(c[PAGE_VIEWS], visits))
    _put(rows, "average_visit_duration_seconds",
         ratio(c[VISIT_DURATION_SUM], c[VISIT_DURATION_N]))
    # Engagement
    _put(rows, "likes", c[LIKES])
    _put(rows, "comments", c[COMMENTS])
    _put(rows, "shares", c[SHARES])
    _put(rows, "saves", c[SAVES])
    _put(rows, "clicks", clicks)
    _put(rows, "mentions", c[MENTIONS])
    _put(rows, "engagements", engagements)
    _put(rows, "engagement_rate_ratio", ratio(engagements, impressions))
    _put(rows, "engagement_rate_by_reach_ratio", ratio(engagements, reach))
    _put(rows, "average_engagement_ratio", ratio(engagements, fol))
    _put(rows, "applause_ratio", ratio(c[LIKES] + c[SAVES], fol))
    _put(rows, "amplification_ratio", ratio(c[SHARES], fol))
    _put(rows, "virality_ratio", ratio(c[SHARES], impressions))
    _put(rows, "click_through_ratio", ratio(clicks, impressions))
    # Conversion and money
    _put(rows, "conversions", c[CONVERSIONS], (ALL_GOALS,))
    for goal, n in agg.goals.items():
        _put(rows, "conversions", n, (goal,))
    _put(rows, "conversion_ratio", ratio(c[CONVERSIONS] + orders, clicks))
    _put(rows, "bounce_ratio", ratio(c[BOUNCED], visits))
    _put(rows, "leads", leads)
    _put(rows, "lead_conversion_ratio", ratio(orders, leads))
    _put(rows, "orders", orders)
    for cur, revenue in agg.revenue.items():
        _put(rows, "revenue", revenue, (cur,))
        _put(rows, "average_order_value", ratio(revenue, agg.orders_cur.get(cur, 0)), (cur,))
    for cur, spend in agg.spend.items():
        _put(rows, "spend", spend, (cur,))
        _put(rows, "cost_per_click", ratio(spend, clicks), (cur,))
        cpm = ratio(spend, impressions)
        _put(rows, "cost_per_mille", cpm * 1000 if cpm is not None else None, (cur,))
        _put(rows, "cost_per_lead", ratio(spend, leads), (cur,))
        _put(rows, "roi_ratio", ratio(agg.revenue.get(cur, 0.0) - spend, spend), (cur,))
    # Care and satisfaction
    _summary(rows, "response_time_seconds", response)
    _summary(rows, "response_time_business_seconds", business)
    _put(rows, "replies", c[REPLIES])
    _put(rows, "needs_response", c[NEEDS_RESPONSE])
    _put(rows, "response_ratio", ratio(answered, c[NEEDS_RESPONSE]))
    _put(rows, "resolution_ratio", ratio(resolved, c[NEEDS_RESPONSE]))
    _put(rows, "sentiment_score", ratio(c[SENTIMENT_SUM], c[SENTIMENT_N]))
    polar = c[SENTIMENT_POS] + c[SENTIMENT_NEG]
    _put(rows, "net_sentiment_ratio", ratio(c[SENTIMENT_POS] - c[SENTIMENT_NEG], polar))
    _put(rows, "csat_ratio", ratio(c[CSAT_GOOD], c[CSAT_N]))
    nps = ratio(c[NPS_PROMOTERS] - c[NPS_DETRACTORS], c[NPS_N])
    _put(rows, "nps", nps * 100 if nps is not None else None)
    _put(rows, "reviews", c[REVIEWS])
    _put(rows, "average_rating", ratio(c[RATING_SUM], c[REVIEWS]))
    return rows


def _summary(rows: list[Row], key: str, sketch: Quantiles | None) -> None:
    """The quantiles, ``_count`` and ``_sum`` of a response-time sketch (none when empty)."""
    if sketch is None or not sketch.count:
        return
    for q in RESPONSE_QUANTILES:
        _put(rows, key, sketch.quantile(q), (str(q),))
    _put(rows, key + "_count", sketch.count)
    _put(rows, key + "_sum", sketch.total)


def staff_rows(
    replies: float, resolved: float, response: Quantiles | None, business: Quantiles | None
) -> list[Row]:
    """The KPIs of one agent or team in one window (SPEC §3, care by staff)."""
    rows: list[Row] = []
    _put(rows, "replies", replies)
    _put(rows, "resolution_ratio", ratio(resolved, replies))
    _summary(rows, "response_time_seconds", response)
    _summary(rows, "response_time_business_seconds", business)
    return rows


def campaign_rows(agg: CampaignAgg) -> list[Row]:
    """The campaign KPIs of SPEC §4 for one (account, campaign, window)."""
    c = agg.counts
    rows: list[Row] = []
    _put(rows, "impressions", c[C_IMPRESSIONS])
    _put(rows, "clicks", c[C_CLICKS])
    _put(rows, "conversions", c[C_CONVERSIONS])
    _put(rows, "click_through_ratio", ratio(c[C_CLICKS], c[C_IMPRESSIONS]))
    for cur, revenue in agg.revenue.items():
        _put(rows, "revenue", revenue, (cur,))
    for cur, spend in agg.spend.items():
        _put(rows, "spend", spend, (cur,))
        _put(rows, "cost_per_click", ratio(spend, c[C_CLICKS]), (cur,))
        _put(rows, "roi_ratio", ratio(agg.revenue.get(cur, 0.0) - spend, spend), (cur,))
    return rows


def clv_rows(per_currency: Iterable[tuple[str, float, float]]) -> list[Row]:
    """customer_lifetime_value: revenue / distinct customers, per currency."""
    rows: list[Row] = []
    for cur, revenue, customers in per_currency:
        _put(rows, "customer_lifetime_value", ratio(revenue, customers), (cur,))
    return rows
