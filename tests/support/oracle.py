"""The oracle: SPEC §3 recomputed by plain batch Python over the same input records.

It shares nothing with the worker but the event validator (whose own tests are table-driven) and
the settings type. It walks each partition's records in offset order, decides valid / late /
duplicate the way SPEC §2 and §5 say, then computes every KPI from lists of events with the
textbook formulas: no buckets, no sketches, no incremental state.

``series`` maps a metric name to ``{label values: value}``, the same shape the exporter produces.
Distinct counts are exact here; the comparison allows the sketches' 2 % (see ``compare``).

Both clocks (SPEC §2): with ``clock=event`` a partition's clock is its stream time and windows end
at the newest event time (of each worker's partitions, ``owners``); an event that arrives after its
bucket left its partition's window is in no window's count, share of voice's market totals from
other partitions included; with ``clock=wall`` both are ``wall_ms``, the one wall reading the oracle
is given, which stands for the wall clock of every ingest and of the scrape. That is exact when no
event sits closer to a late or window edge than the time between its ingest and the scrape; the
wall-clock tests keep their events minutes away from the edges that move.

Caps (SPEC §4): an account is admitted first come, first served, up to ``max_accounts``; the events
of the others count under ``account="_other"`` without a campaign. Campaigns, platforms, goals and
currencies are admitted first come per account and partition (where the worker keeps them), and
the rest count under ``"_other"``. With several partitions "first come" across them depends on how
the worker interleaved them: pass the accounts it admitted as ``admitted``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.events import Event, Rejected
from schemas.validate import parse
from streams.settings import Settings

Labels = tuple[str, ...]


@dataclass
class Applied:
    ev: Event
    partition: int
    clock: int  # the partition's stream time right after this event


@dataclass
class OracleResult:
    series: dict[str, dict[Labels, float]]
    rejected: dict[str, int]
    late: int
    duplicates: int
    applied: int
    now: int
    overflow: dict[str, int] = field(default_factory=dict)  # kind -> events


CAMPAIGN_TYPES = frozenset({"impression", "click", "conversion", "purchase", "spend"})


def _ratio(n: float, d: float) -> float | None:
    return n / d if d > 0 else None


@dataclass
class _Oracle:
    settings: Settings
    wall_ms: int
    series: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))

    def put(self, name: str, labels: Labels, value: float | None) -> None:
        if value is not None:
            self.series[name][labels] = float(value)


OTHER = "_other"


@dataclass
class _Caps:
    """First come, first served admission of label values (see the module docstring)."""

    settings: Settings
    admitted: Collection[str] | None
    accounts: set[str] = field(default_factory=set)
    per_account: dict[tuple[int, str, str], set[str]] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def apply(self, p: int, ev: Event) -> Event:
        s = self.settings
        account = ev.account
        if self.admitted is not None:
            ok = account in self.admitted
        else:
            ok = account in self.accounts or len(self.accounts) < s.max_accounts
            if ok:
                self.accounts.add(account)
        if not ok:
            self.overflow["account"] += 1
            ev = replace(ev, account=OTHER, campaign=None)
        changes: dict[str, Any] = {}
        for kind, cap in (("campaign", s.max_campaigns_per_account),
                          ("platform", s.max_platforms_per_account),
                          ("goal", s.max_goals_per_account),
                          ("currency", s.max_currencies_per_account)):
            value = getattr(ev, kind)
            if value is None:
                continue
            seen = self.per_account.setdefault((p, ev.account, kind), set())
            if value in seen:
                continue
            if len(seen) < cap:
                seen.add(value)
            else:
                self.overflow[kind] += 1
                changes[kind] = OTHER
        return replace(ev, **changes) if changes else ev


def run(
    records: Iterable[tuple[int, int, bytes]], settings: Settings, wall_ms: int,
    admitted: Collection[str] | None = None, owners: Collection[Collection[int]] | None = None,
) -> OracleResult:
    """``records``: (partition, offset, value) in any order; the oracle sorts them.
    ``admitted``: the accounts under the cap, when the walk order cannot tell (see above).
    ``owners``: the partitions of each worker, when several export; with the event clock each
    worker's windows end at the newest event time of its own partitions."""
    retention = settings.retention_ms
    event_clock = settings.clock == "event"
    caps = _Caps(settings, admitted)
    by_partition: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for p, o, v in records:
        by_partition[p].append((o, v))
    rejected: dict[str, int] = defaultdict(int)
    late = dups = 0
    applied: list[Applied] = []
    stream_time: dict[int, int] = {}
    for p, recs in by_partition.items():
        st = -1
        seen: set[str] = set()
        for _o, raw in sorted(recs, key=lambda r: r[0]):
            ev = parse(raw, now_ms=wall_ms, max_bytes=settings.max_record_bytes,
                       future_tolerance_ms=int(settings.future_tolerance_seconds * 1000))
            if isinstance(ev, Rejected):
                rejected[ev.reason.value] += 1
                continue
            if ev.ts < (st if event_clock else wall_ms) - retention:
                late += 1
                continue
            st = max(st, ev.ts)
            if ev.event_id in seen:
                dups += 1
                continue
            seen.add(ev.event_id)
            applied.append(Applied(caps.apply(p, ev), p, st if event_clock else wall_ms))
        stream_time[p] = st if event_clock else wall_ms  # from here on: the partition's clock
    now = max(stream_time.values(), default=-1) if event_clock else wall_ms
    # The clock each partition's accounts are exported with: its worker's.
    clock_of = {p: now for p in stream_time}
    if event_clock and owners:
        for group in owners:
            group_now = max((stream_time[p] for p in group if p in stream_time), default=-1)
            clock_of.update({p: group_now for p in group if p in stream_time})
    result = _Oracle(settings, wall_ms)
    _kpis(result, applied, stream_time, clock_of)
    return OracleResult(dict(result.series), dict(rejected), late, dups, len(applied), now,
                        dict(caps.overflow))


def _kpis(
    o: _Oracle, applied: list[Applied], stream_time: dict[int, int], clock_of: dict[int, int]
) -> None:
    s = o.settings
    # an account lives in one partition ("_other" in many, with one worker: one clock)
    now_of: dict[str, int] = {a.ev.account: clock_of[a.partition] for a in applied}
    retention = s.retention_ms
    windows = s.window_specs
    largest = windows[-1]
    accounts = sorted({a.ev.account for a in applied})
    # --- replies matched to messages, in processing order per partition (SPEC: reply.ts - ts)
    messages: dict[tuple[str, str], Applied] = {}
    orphans: dict[tuple[str, str], list[Applied]] = defaultdict(list)
    pairs: list[tuple[Applied, Applied]] = []  # (reply, message)
    for a in applied:  # already in per-partition processing order
        ev = a.ev
        if ev.type in ("comment", "mention"):
            key = (ev.account, ev.event_id)
            messages[key] = a
            for r in orphans.pop(key, []):
                if r.ev.ts >= a.clock - retention:
                    pairs.append((r, a))
        elif ev.type == "reply":
            key = (ev.account, ev.in_reply_to or "")
            m = messages.get(key)
            if m is not None and m.ev.ts >= a.clock - retention:
                pairs.append((a, m))
            else:
                orphans[key].append(a)
    answered = {(m.ev.account, m.ev.event_id) for _r, m in pairs}
    resolved = {(m.ev.account, m.ev.event_id) for r, m in pairs if r.ev.resolved}

    # --- followers (not windowed); per partition, then summed: a keyed account lives in one
    # partition, while "_other" gathers accounts of every partition (and the worker adds them up)
    followers: dict[tuple[str, str], float] = defaultdict(float)
    fevents: dict[tuple[int, str, str], list[Event]] = defaultdict(list)
    for a in applied:
        if a.ev.type in ("followers", "follow", "unfollow"):
            fevents[(a.partition, a.ev.account, a.ev.platform)].append(a.ev)
    for (_p, facc, fplat), evs in fevents.items():
        snaps = [e for e in evs if e.type == "followers"]
        snap_ts, count = -1, 0
        for e in snaps:  # in processing order; a later arrival wins a tie
            if e.ts >= snap_ts:
                snap_ts, count = e.ts, e.count or 0
        delta = sum(1 if e.type == "follow" else -1 for e in evs
                    if e.type in ("follow", "unfollow") and e.ts > snap_ts)
        followers[(facc, fplat)] += count + delta

    # --- platforms an account has data for in the largest window's retained buckets
    known: dict[str, set[str]] = defaultdict(set)
    for a in applied:
        floor = stream_time[a.partition] // largest.bucket_ms - 29
        if a.ev.ts // largest.bucket_ms >= floor:
            known[a.ev.account].add(a.ev.platform)

    market_of = s.market_of
    for w, now in [(w, now) for w in windows for now in sorted(set(now_of.values()))]:
        lo = (now // w.bucket_ms - 29) * w.bucket_ms
        hi = (now // w.bucket_ms + 1) * w.bucket_ms  # exclusive; a wall clock has a future
        window_applied = [a for a in applied if lo <= a.ev.ts < hi]
        by_ap: dict[tuple[str, str], list[Event]] = defaultdict(list)
        for a in window_applied:
            by_ap[(a.ev.account, a.ev.platform)].append(a.ev)
            by_ap[(a.ev.account, "all")].append(a.ev)
        # Per-partition stream time (module docstring): an event counts in a window's bucket
        # only if that bucket was inside its own partition's window when it was applied. For an
        # account's own series that follows from the window above (a clock only grows); for the
        # market totals of share of voice, summed over partitions whose clocks differ, it does
        # not: a mention that arrived after its bucket left its partition's window is in no
        # window's total, even where a lagging worker's window still covers that bucket.
        market_mentions: dict[tuple[str, str], int] = defaultdict(int)
        for a in window_applied:
            if a.ev.type == "mention" and \
                    a.ev.ts // w.bucket_ms >= a.clock // w.bucket_ms - 29:
                market = market_of(a.ev.account)
                market_mentions[(market, a.ev.platform)] += 1
                market_mentions[(market, "all")] += 1
        for acc in accounts:
            if now_of[acc] != now:
                continue  # exported by a worker with another clock
            # "_other" (over the account cap) is exported on platform="all" only (SPEC §4)
            plats = {*known[acc], "all"} if acc != OTHER else {"all"}
            for plat in plats:
                evs = by_ap.get((acc, plat), [])
                if plat == "all":
                    fol_vals = [v for (fa, _fp), v in followers.items() if fa == acc]
                    fol = float(sum(fol_vals)) if fol_vals else None
                else:
                    fol = followers.get((acc, plat))
                rt = [max(0, r.ev.ts - m.ev.ts) / 1000.0 for r, m in pairs
                      if r.ev.account == acc and lo <= r.ev.ts < hi
                      and (plat == "all" or r.ev.platform == plat)]
                need = [e for e in evs if e.type in ("comment", "mention") and e.needs_response]
                _window(o, (acc, plat, w.label), evs, fol, rt,
                        sum(1 for e in need if (acc, e.event_id) in answered),
                        sum(1 for e in need if (acc, e.event_id) in resolved),
                        market_mentions[(market_of(acc), plat)])
            camp: dict[str, list[Event]] = defaultdict(list)
            for e in by_ap.get((acc, "all"), []):
                # A campaign series exists once the campaign has an event that a campaign KPI
                # counts (SPEC §4 lists them): a like tagged with a campaign makes none.
                if e.campaign is not None and e.type in CAMPAIGN_TYPES:
                    camp[e.campaign].append(e)
            for name, evs in camp.items():
                _campaign(o, (acc, name, w.label), evs)

    # --- current values
    sla_ms = s.response_sla_seconds * 1000
    # grouped once: a cardinality test has a thousand accounts and a million events
    of_account: dict[str, list[Applied]] = defaultdict(list)
    for a in applied:
        of_account[a.ev.account].append(a)
    messages_of: dict[str, list[tuple[str, Applied]]] = defaultdict(list)
    for (ma, mid), m in messages.items():
        messages_of[ma].append((mid, m))
    for acc in accounts:
        plats = {"all"} | {p for (fa, p) in followers if fa == acc}
        pending: dict[str, int] = defaultdict(int)
        overdue: dict[str, int] = defaultdict(int)
        for mid, m in messages_of[acc]:
            if not m.ev.needs_response or (acc, mid) in answered:
                continue
            if m.ev.ts < stream_time[m.partition] - retention:
                continue
            for p in (m.ev.platform, "all"):
                pending[p] += 1
                if now_of[acc] - m.ev.ts > sla_ms:
                    overdue[p] += 1
            plats.add(m.ev.platform)
        revenue: dict[tuple[str, str], float] = defaultdict(float)
        customers: dict[tuple[str, str], set[str]] = defaultdict(set)
        for a in of_account[acc]:
            e = a.ev
            if e.type == "purchase":
                for p in (e.platform, "all"):
                    revenue[(p, e.currency or "")] += e.amount or 0.0
                    if e.user_id is not None:
                        customers[(p, e.currency or "")].add(e.user_id)
                plats.add(e.platform)
        if acc == OTHER:
            plats = {"all"}
        for p in plats:
            if p == "all":
                fol_vals = [v for (fa, _fp), v in followers.items() if fa == acc]
                if fol_vals:
                    o.put("social_followers", (acc, p), sum(fol_vals))
            elif (acc, p) in followers:
                o.put("social_followers", (acc, p), followers[(acc, p)])
            o.put("social_pending_responses", (acc, p), pending.get(p, 0))
            o.put("social_overdue_responses", (acc, p), overdue.get(p, 0))
        for (p, cur), rev in revenue.items():
            if p not in plats:
                continue
            o.put("social_customer_lifetime_value", (acc, p, cur),
                  _ratio(rev, len(customers[(p, cur)])))


def _count(evs: list[Event], t: str) -> int:
    return sum(1 for e in evs if e.type == t)


def _window(
    o: _Oracle, base: Labels, evs: list[Event], followers: float | None, rt: list[float],
    answered: int, resolved: int, market_mentions: int,
) -> None:
    put = o.put
    imp = [e for e in evs if e.type == "impression"]
    impressions = len(imp)
    paid = sum(1 for e in imp if e.paid)
    reach = len({e.user_id for e in imp if e.user_id is not None})
    likes, comments, shares, saves = (_count(evs, t) for t in ("like", "comment", "share", "save"))
    clicks, mentions, leads = (_count(evs, t) for t in ("click", "mention", "lead"))
    engagements = likes + comments + shares + saves
    visits = [e for e in evs if e.type == "visit"]
    fol = followers if followers is not None and followers > 0 else 0.0
    put("social_impressions", base, impressions)
    put("social_paid_impressions", base, paid)
    put("social_organic_impressions", base, impressions - paid)
    put("social_reach", base, reach)
    net = _count(evs, "follow") - _count(evs, "unfollow")
    if followers is not None:
        put("social_audience_growth_ratio", base, _ratio(net, followers - net))
    put("social_potential_reach", base, sum(e.author_followers or 0 for e in evs
                                            if e.type in ("share", "mention")))
    put("social_share_of_voice_ratio", base, _ratio(mentions, market_mentions))
    put("social_visits", base, len(visits))
    put("social_unique_visitors", base, len({e.user_id for e in visits if e.user_id is not None}))
    page_views = sum(e.pages or 0 for e in visits)
    put("social_page_views", base, page_views)
    put("social_pages_per_visit", base, _ratio(page_views, len(visits)))
    durations = [e.duration_seconds for e in visits if e.duration_seconds is not None]
    put("social_average_visit_duration_seconds", base, _ratio(sum(durations), len(durations)))
    for name, v in (("likes", likes), ("comments", comments), ("shares", shares),
                    ("saves", saves), ("clicks", clicks), ("mentions", mentions),
                    ("engagements", engagements)):
        put(f"social_{name}", base, v)
    put("social_engagement_rate_ratio", base, _ratio(engagements, impressions))
    put("social_engagement_rate_by_reach_ratio", base, _ratio(engagements, reach))
    put("social_average_engagement_ratio", base, _ratio(engagements, fol))
    put("social_applause_ratio", base, _ratio(likes + saves, fol))
    put("social_amplification_ratio", base, _ratio(shares, fol))
    put("social_virality_ratio", base, _ratio(shares, impressions))
    put("social_click_through_ratio", base, _ratio(clicks, impressions))
    conv = [e for e in evs if e.type == "conversion"]
    put("social_conversions", (*base, "all"), len(conv))
    for goal in {e.goal or "" for e in conv}:
        put("social_conversions", (*base, goal), sum(1 for e in conv if e.goal == goal))
    purchases = [e for e in evs if e.type == "purchase"]
    put("social_conversion_ratio", base, _ratio(len(conv) + len(purchases), clicks))
    put("social_bounce_ratio", base, _ratio(sum(1 for e in visits if e.bounced), len(visits)))
    put("social_leads", base, leads)
    put("social_lead_conversion_ratio", base, _ratio(len(purchases), leads))
    put("social_orders", base, len(purchases))
    spend_evs = [e for e in evs if e.type == "spend"]
    for cur in {e.currency or "" for e in purchases}:
        mine = [e for e in purchases if e.currency == cur]
        rev = sum(e.amount or 0.0 for e in mine)
        put("social_revenue", (*base, cur), rev)
        put("social_average_order_value", (*base, cur), _ratio(rev, len(mine)))
    for cur in {e.currency or "" for e in spend_evs}:
        spend = sum(e.amount or 0.0 for e in spend_evs if e.currency == cur)
        rev = sum(e.amount or 0.0 for e in purchases if e.currency == cur)
        put("social_spend", (*base, cur), spend)
        put("social_cost_per_click", (*base, cur), _ratio(spend, clicks))
        cpm = _ratio(spend, impressions)
        put("social_cost_per_mille", (*base, cur), None if cpm is None else cpm * 1000)
        put("social_cost_per_lead", (*base, cur), _ratio(spend, leads))
        put("social_roi_ratio", (*base, cur), _ratio(rev - spend, spend))
    if rt:
        srt = sorted(rt)
        for q in (0.5, 0.9, 0.99):
            put("social_response_time_seconds", (*base, str(q)), srt[int(q * (len(srt) - 1))])
        put("social_response_time_seconds_count", base, len(srt))
        put("social_response_time_seconds_sum", base, sum(srt))
    need = sum(1 for e in evs if e.type in ("comment", "mention") and e.needs_response)
    put("social_replies", base, _count(evs, "reply"))
    put("social_needs_response", base, need)
    put("social_response_ratio", base, _ratio(answered, need))
    put("social_resolution_ratio", base, _ratio(resolved, need))
    sent = [e.sentiment for e in evs
            if e.type in ("comment", "mention") and e.sentiment is not None]
    put("social_sentiment_score", base, _ratio(sum(sent), len(sent)))
    pos = sum(1 for x in sent if x > 0.25)
    neg = sum(1 for x in sent if x < -0.25)
    put("social_net_sentiment_ratio", base, _ratio(pos - neg, pos + neg))
    csat = [e.score or 0 for e in evs if e.type == "survey" and e.survey == "csat"]
    put("social_csat_ratio", base, _ratio(sum(1 for x in csat if x >= 4), len(csat)))
    nps = [e.score or 0 for e in evs if e.type == "survey" and e.survey == "nps"]
    n = _ratio(sum(1 for x in nps if x >= 9) - sum(1 for x in nps if x <= 6), len(nps))
    put("social_nps", base, None if n is None else n * 100)
    ratings = [e.rating or 0 for e in evs if e.type == "review"]
    put("social_reviews", base, len(ratings))
    put("social_average_rating", base, _ratio(sum(ratings), len(ratings)))


def _campaign(o: _Oracle, base: Labels, evs: list[Event]) -> None:
    impressions = _count(evs, "impression")
    clicks = _count(evs, "click")
    o.put("social_campaign_impressions", base, impressions)
    o.put("social_campaign_clicks", base, clicks)
    o.put("social_campaign_conversions", base, _count(evs, "conversion"))
    o.put("social_campaign_click_through_ratio", base, _ratio(clicks, impressions))
    purchases = [e for e in evs if e.type == "purchase"]
    spends = [e for e in evs if e.type == "spend"]
    for cur in {e.currency or "" for e in purchases}:
        o.put("social_campaign_revenue", (*base, cur),
              sum(e.amount or 0.0 for e in purchases if e.currency == cur))
    for cur in {e.currency or "" for e in spends}:
        spend = sum(e.amount or 0.0 for e in spends if e.currency == cur)
        rev = sum(e.amount or 0.0 for e in purchases if e.currency == cur)
        o.put("social_campaign_spend", (*base, cur), spend)
        o.put("social_campaign_cost_per_click", (*base, cur), _ratio(spend, clicks))
        o.put("social_campaign_roi_ratio", (*base, cur), _ratio(rev - spend, spend))


# Series whose value comes from a sketch (or is a ratio over one): compared within 2 %.
APPROXIMATE = {
    "social_reach", "social_unique_visitors", "social_engagement_rate_by_reach_ratio",
    "social_customer_lifetime_value", "social_response_time_seconds",
}
SKETCH_TOLERANCE = 0.02


def compare(
    expected: dict[str, dict[Labels, float]], actual: dict[str, dict[Labels, float]]
) -> list[str]:
    """Every difference between the oracle and the worker, as readable lines (empty: equal)."""
    problems: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        exp = expected.get(name, {})
        act = actual.get(name, {})
        for labels in sorted(set(exp) | set(act)):
            if labels not in act:
                problems.append(f"missing {name}{labels} (oracle {exp[labels]})")
                continue
            if labels not in exp:
                problems.append(f"unexpected {name}{labels} = {act[labels]}")
                continue
            e, a = exp[labels], act[labels]
            if name in APPROXIMATE:
                ok = math.isclose(a, e, rel_tol=SKETCH_TOLERANCE, abs_tol=1e-9)
            else:
                ok = math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-9)
            if not ok:
                problems.append(f"{name}{labels}: worker {a} != oracle {e}")
    return problems
