"""KPI series: each window's buckets merged (counters add, sketches union) and turned into the
KPIs of SPEC §3, named by the catalogue, on demand.

Both the Prometheus exposition and ``GET /kpis`` call ``compute``; the merge happens at read
time, so nothing is recomputed per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.core.aggregates import (
    POST_RANKINGS,
    STAFF_KINDS,
    CampaignAgg,
    CareSlot,
    PlatformAgg,
    StaffSlot,
    merged,
)
from streams.core.catalogue import (
    CAMPAIGN_KPIS,
    CURRENT_KPIS,
    HISTOGRAM_BUCKETS,
    SUMMARY_PARTS,
    sample_metrics,
)
from streams.core.engine import Engine
from streams.core.kpis import Row, campaign_rows, clv_rows, staff_rows, window_rows
from streams.core.labels import (
    ALL_PLATFORMS,
    OTHER_ACCOUNT,
    OTHER_LABEL,
    exported_account,
    market_of_other,
)
from streams.core.sketches import Hll, Quantiles, TopItems
from streams.core.steps import run, run_async
from streams.core.totals import (
    CARE_COUNTERS,
    KEYED_COUNTERS,
    RESPONSE_BUCKETS,
    RESPONSE_HISTOGRAM,
    SLOT_COUNTERS,
    CareTotals,
    TotalsAgg,
)
from streams.settings import Settings

LabelValues = tuple[str, ...]
SeriesMap = dict[str, list[tuple[LabelValues, float]]]

_WINDOW_NAMES = {m.key: m.name for m in sample_metrics().values() if m.scope == "window"}
_CURRENT_NAMES = {m.key: m.name for m in CURRENT_KPIS}
_CAMPAIGN_NAMES = {m.key: m.name for m in CAMPAIGN_KPIS}
_HISTOGRAM = "social_" + RESPONSE_HISTOGRAM
_SLOT_TOTALS = [(c.slot, f"social_{c.key}_total") for c in SLOT_COUNTERS]
_KEYED_TOTALS = [(c.field, f"social_{c.key}_total") for c in KEYED_COUNTERS]
_ANSWERED, _RESOLVED = (f"social_{key}_total" for key, _help in CARE_COUNTERS)
# the ``le`` label values, as the Prometheus client formats them
_LE = [*(repr(float(b)) for b in RESPONSE_BUCKETS), "+Inf"]
_STAFF_NAMES = {kind: {m.key: m.name for m in sample_metrics().values() if m.scope == kind}
                for kind in STAFF_KINDS}


def _merge_into(total: Quantiles | None, part: Quantiles | None) -> Quantiles | None:
    if part is None or not part.count:
        return total
    if total is None:
        total = Quantiles()
    total.merge(part)
    return total


@dataclass
class _Care:
    """Answered and resolved (message's time), response times (reply's time) of a window."""

    answered: float = 0.0
    resolved: float = 0.0
    response: Quantiles | None = None
    business: Quantiles | None = None

    def add(self, slot: CareSlot) -> None:
        self.answered += slot.answered
        self.resolved += slot.resolved
        self.response = _merge_into(self.response, slot.response)
        self.business = _merge_into(self.business, slot.business)


@dataclass
class _Staff:
    """What one agent or team did in a window."""

    replies: float = 0.0
    resolved: float = 0.0
    response: Quantiles | None = None
    business: Quantiles | None = None

    def add(self, slot: StaffSlot) -> None:
        self.replies += slot.replies
        self.resolved += slot.resolved
        self.response = _merge_into(self.response, slot.response)
        self.business = _merge_into(self.business, slot.business)


@dataclass
class _WindowTotals:
    platforms: dict[str, PlatformAgg] = field(default_factory=dict)
    care: dict[str, _Care] = field(default_factory=dict)
    campaigns: dict[str, CampaignAgg] = field(default_factory=dict)
    staff: dict[str, _Staff] = field(default_factory=dict)  # by ``staff_key``


def _window_totals(
    engine: Engine, account: str, res: int, now: int, known: set[str]
) -> _WindowTotals:
    per_platform: dict[str, list[PlatformAgg]] = defaultdict(list)
    view = _WindowTotals()
    for b in engine.window_buckets(account, res, now):
        for platform, agg in b.platforms.items():
            per_platform[platform].append(agg)
        for name, ca in b.campaigns.items():
            acc = view.campaigns.get(name)
            if acc is None:
                acc = view.campaigns[name] = CampaignAgg()
            acc.merge(ca)
    for platform in known | per_platform.keys():
        view.platforms[platform] = merged(per_platform.get(platform, []))
    view.platforms[ALL_PLATFORMS] = merged(list(view.platforms.values()))
    in_window = engine.windows[res].bucket_range(now)
    total = view.care[ALL_PLATFORMS] = _Care()
    for core in engine.iter_cores(account):
        for (r, idx), per in core.care.items():
            if r != res or idx not in in_window:
                continue
            for platform, slot in per.items():
                view.care.setdefault(platform, _Care()).add(slot)
                total.add(slot)
        for (r, idx), staff in core.staff.items():
            if r != res or idx not in in_window:
                continue
            for key, sslot in staff.items():
                view.staff.setdefault(key, _Staff()).add(sslot)
    return view


def _known_platforms(engine: Engine) -> dict[str, set[str]]:
    """Per account, the platforms it has data for anywhere in the largest window's buckets."""
    largest = len(engine.windows) - 1
    out: dict[str, set[str]] = defaultdict(set)
    for ps in engine.partitions.values():
        for (acc, res, _idx), b in ps.buckets.items():
            if res == largest:
                out[exported_account(acc)].update(b.platforms)
    return out


RemoteMentions = Iterable[tuple[int, str, str, int, int, float]]


def compute(
    engine: Engine,
    settings: Settings,
    only_account: str | None = None,
    remote: RemoteMentions = (),
    now: int | None = None,
) -> SeriesMap:
    """All KPI series of the owned accounts (or of one), labels in ``KpiMetric.labels`` order.

    ``remote``: (partition, market, platform, resolution, bucket index, mentions) published by
    the workers that own the other partitions; share of voice needs every account of a market.
    ``now``: where the windows end (default ``engine.clock()``); the scrape passes the reading it
    also exports, so a test can give the oracle the very clock of the values it compares.
    """
    return run(_compute_steps(engine, settings, only_account, remote, now))


async def compute_async(
    engine: Engine,
    settings: Settings,
    only_account: str | None = None,
    remote: RemoteMentions = (),
    now: int | None = None,
) -> SeriesMap:
    """``compute`` that gives the event loop back every few accounts, so a scrape of many
    accounts delays the stream by one slice at a time, not by the whole computation."""
    return await run_async(_compute_steps(engine, settings, only_account, remote, now))


# An account's windows take a few milliseconds: two per slice keeps a scrape's stall short.
ACCOUNTS_PER_SLICE = 2


def _compute_steps(
    engine: Engine, settings: Settings, only_account: str | None, remote: RemoteMentions,
    now: int | None = None,
) -> Generator[None, None, SeriesMap]:
    if now is None:
        now = engine.clock()
    out: SeriesMap = defaultdict(list)
    if now < 0:
        return out
    accounts = [a for a in engine.accounts() if only_account in (None, a)]
    windows_of: dict[str, list[_WindowTotals]] = {}
    known_by_account = _known_platforms(engine)
    market_mentions: dict[tuple[str, str, int], float] = defaultdict(float)
    for i, account in enumerate(accounts):
        if i % ACCOUNTS_PER_SLICE == ACCOUNTS_PER_SLICE - 1:
            yield
            if engine.clock() < 0:  # every partition was revoked meanwhile
                return out
        known = known_by_account.get(account, set())
        vs = [_window_totals(engine, account, res, now, known)
              for res in range(len(engine.windows))]
        windows_of[account] = vs
    # Per partition and market, kept as mentions are applied: an overflowed account's count in
    # its own market, though its buckets are "_other"'s.
    ranges = [w.bucket_range(now) for w in engine.windows]
    owned = engine.partitions.keys()
    local = ((market, platform, res, idx, n)
             for ps in engine.partitions.values()
             for (market, res, idx), per in ps.market_totals.items()
             for platform, n in per.items())
    others = ((market, platform, res, idx, n)
              for p, market, platform, res, idx, n in remote if p not in owned)
    for market, platform, res, idx, n in (*local, *others):
        if res < len(ranges) and idx in ranges[res]:
            market_mentions[(market, platform, res)] += n
            market_mentions[(market, ALL_PLATFORMS, res)] += n
    sla_ms = settings.response_sla_seconds * 1000
    for i, account in enumerate(accounts):
        if i % ACCOUNTS_PER_SLICE == ACCOUNTS_PER_SLICE - 1:
            yield
        other = account == OTHER_ACCOUNT
        market = settings.market_of(account)
        followers = _followers(engine, account)
        for res, v in enumerate(windows_of[account]):
            label = engine.windows[res].label
            for platform, agg in v.platforms.items():
                if other and platform != ALL_PLATFORMS:
                    continue
                care = v.care.get(platform) or _Care()
                rows = window_rows(
                    agg,
                    answered=care.answered,
                    resolved=care.resolved,
                    response=care.response,
                    followers=followers.get(platform),
                    # "_other" spans markets: no share of voice of its own
                    market_mentions=0 if other else market_mentions[(market, platform, res)],
                    business=care.business,
                )
                _emit(out, _WINDOW_NAMES, (account, platform, label), rows)
            if other:
                continue
            for name, ca in v.campaigns.items():
                _emit(out, _CAMPAIGN_NAMES, (account, name, label), campaign_rows(ca))
            for key, st in v.staff.items():
                kind, _, slug = key.partition(":")
                _emit(out, _STAFF_NAMES[kind], (account, slug, label),
                      staff_rows(st.replies, st.resolved, st.response, st.business))
        _current(out, engine, settings, account, followers, now, sla_ms, other)
        _lifetime(out, engine, account)
    return out


def _lifetime(out: SeriesMap, engine: Engine, account: str) -> None:
    """The account's lifetime totals (``streams.core.totals``): per platform and ``all``; for
    "_other" on ``all`` only, one series per partition (its markets summed)."""
    if account == OTHER_ACCOUNT:
        for p, ps in sorted(engine.partitions.items()):
            parts = [agg for label, t in ps.totals.items() if market_of_other(label) is not None
                     for agg in t.platforms.values()]
            if parts:
                _emit_totals(out, (account, ALL_PLATFORMS, str(p)), _sum_totals(parts))
        return
    per: dict[str, TotalsAgg] = {}
    care: dict[str, CareTotals] = {}
    for ps in engine.partitions.values():
        t = ps.totals.get(account)
        if t is not None:
            per.update(t.platforms)
    for core in engine.iter_cores(account):
        care.update(core.care_totals)
    if not per and not care:
        return
    for platform in sorted(per):
        _emit_totals(out, (account, platform, ""), per[platform])
    _emit_totals(out, (account, ALL_PLATFORMS, ""), _sum_totals(list(per.values())))
    if care:
        everything = CareTotals()
        for ct in care.values():
            everything.merge(ct)
        for platform, ct in (*sorted(care.items()), (ALL_PLATFORMS, everything)):
            _emit_care(out, (account, platform, ""), ct)


def _sum_totals(parts: list[TotalsAgg]) -> TotalsAgg:
    total = TotalsAgg()
    for agg in parts:
        total.merge(agg)
    return total


def _emit_totals(out: SeriesMap, base: LabelValues, agg: TotalsAgg) -> None:
    counts = agg.counts
    for slot, name in _SLOT_TOTALS:
        out[name].append((base, counts[slot]))
    for field_name, name in _KEYED_TOTALS:
        for key, value in sorted(getattr(agg, field_name).items()):
            out[name].append(((*base, key), value))


def _emit_care(out: SeriesMap, base: LabelValues, ct: CareTotals) -> None:
    out[_ANSWERED].append((base, ct.answered))
    out[_RESOLVED].append((base, ct.resolved))
    if not ct.responses:
        return
    for le, n in zip(_LE, ct.cumulative(), strict=True):
        out[_HISTOGRAM + HISTOGRAM_BUCKETS].append(((*base, le), n))
    out[_HISTOGRAM + SUMMARY_PARTS[0]].append((base, ct.responses))
    out[_HISTOGRAM + SUMMARY_PARTS[1]].append((base, ct.response_sum))


def _emit(out: SeriesMap, names: dict[str, str], base: LabelValues, rows: list[Row]) -> None:
    for key, extra, value in rows:
        out[names[key]].append(((*base, *extra), value))


def _followers(engine: Engine, account: str) -> dict[str, float]:
    """Per exported platform, and ``all`` as their sum, over the account's cores (for
    ``_other``: every overflowed account's); a platform over the cap counts under ``_other``.
    Only counts known from a ``followers`` snapshot: a net of follows is not a count."""
    per: dict[str, float] = defaultdict(float)
    for core in engine.iter_cores(account):
        for platform, f in core.followers.items():
            value = f.value()
            if value is not None:
                per[platform if platform in core.platforms else OTHER_LABEL] += value
    if per:
        per[ALL_PLATFORMS] = sum(per.values())
    return per


def _current(
    out: SeriesMap, engine: Engine, settings: Settings, account: str,
    followers: dict[str, float], now: int, sla_ms: float, other: bool,
) -> None:
    base_platforms = set(followers)
    pending: dict[str, float] = defaultdict(float)
    overdue: dict[str, float] = defaultdict(float)
    clv_revenue: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    clv_customers: dict[str, dict[str, list[Hll]]] = defaultdict(lambda: defaultdict(list))
    for name, core in engine.iter_named_cores(account):
        # A message is overdue once it waited more than the SLA: of business time if the
        # account has business hours (one walk back from now serves all of its messages).
        hours = settings.business_hours_of(name) if core.pending else None
        overdue_before = hours.overdue_before(now, sla_ms) if hours is not None else now - sla_ms
        for mid in core.pending:
            m = core.messages[mid]
            late = m.ts < overdue_before
            for platform in (m.platform, ALL_PLATFORMS):
                pending[platform] += 1
                if late:
                    overdue[platform] += 1
        for platform, per in core.clv.items():
            for cur, (revenue, hll) in per.items():
                for p in (platform, ALL_PLATFORMS):
                    clv_revenue[p][cur] += revenue
                    clv_customers[p][cur].append(hll)
        base_platforms.update(p if p in core.platforms else OTHER_LABEL for p in core.followers)
        base_platforms.update(core.clv)
    base_platforms.update(pending)
    base_platforms.add(ALL_PLATFORMS)
    for platform in sorted(base_platforms):
        if other and platform != ALL_PLATFORMS:
            continue
        labels = (account, platform)
        if platform in followers:
            out[_CURRENT_NAMES["followers"]].append((labels, followers[platform]))
        out[_CURRENT_NAMES["pending_responses"]].append((labels, pending.get(platform, 0.0)))
        out[_CURRENT_NAMES["overdue_responses"]].append((labels, overdue.get(platform, 0.0)))
        rows = clv_rows(
            (cur, revenue, Hll.union_estimate(clv_customers[platform][cur]))
            for cur, revenue in clv_revenue.get(platform, {}).items()
        )
        _emit(out, _CURRENT_NAMES, labels, rows)


TOP_POSTS = 10


def top_posts(
    engine: Engine, account: str, now: int | None = None, n: int = TOP_POSTS
) -> dict[str, dict[str, Any]]:
    """Per window and ranking (``POST_RANKINGS``), the account's ``n`` top posts from its
    buckets' merged heavy-hitter sketches: ``{"error_bound": e, "total": t, "posts": [...]}``,
    each post with its estimated count and the bounds its true count lies between (no true
    count is off by more than ``error_bound``). Post ids are never labels: ``GET /kpis`` and
    the report show this, not the exposition."""
    if now is None:
        now = engine.clock()
    out: dict[str, dict[str, Any]] = {}
    if now < 0 or account == OTHER_ACCOUNT:
        return out
    for res, w in enumerate(engine.windows):
        parts: dict[str, list[TopItems]] = defaultdict(list)
        for b in engine.window_buckets(account, res, now):
            for ranking, sk in b.posts.items():
                parts[ranking].append(sk)
        per: dict[str, Any] = {}
        for ranking in POST_RANKINGS:
            sk = TopItems.union(parts.get(ranking, []))
            per[ranking] = {
                "error_bound": sk.error_bound,
                "total": sk.total,
                "posts": [item._asdict() for item in sk.top(n)],
            }
        out[w.label] = per
    return out
