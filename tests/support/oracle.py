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

Record keys (SPEC §1): an account's events are applied in its home partition (Kafka's default
partitioner over the account); a valid record read elsewhere is forwarded there through the
repartition topic and applied with the *home* partition's clock. In what order the forwarded and
the home's own records meet is the worker's interleaving: the oracle applies the home's own records
in offset order, then the forwarded ones by source partition and offset, and checks that no
record's late/on-time decision could differ in another interleaving (a forwarded record follows
every earlier forward of its source; at most it follows everything), raising ``Ambiguous``
when it could: a data set must not depend on what the oracle cannot know.

Caps (SPEC §4): each partition holds ``account_share`` of ``max_accounts`` slots, first come,
first served in the partition's order; an account's decision lapses after the retention horizon
without events. Overflowed accounts count under ``account="_other"`` without a campaign, their
mentions in their own market. Campaigns, platforms, goals and currencies are admitted first come
per account (for the overflowed ones: per partition, together), and the rest count under
``"_other"``. ``admitted`` (optional) asserts the admitted
accounts instead of deriving them. Followers are kept per account and real platform, summed into
the exported labels, and known only once a ``followers`` snapshot came.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka.partitioner import murmur2

from schemas.events import Event, Rejected
from schemas.validate import parse
from streams.core.schedule import BusinessHours
from streams.settings import Settings

Labels = tuple[str, ...]


@dataclass
class Applied:
    ev: Event  # as labelled (after the caps)
    partition: int  # its home partition
    clock: int  # the partition's stream time right after this event
    source: str = ""  # its own account (``ev.account`` may be "_other")
    source_platform: str = ""  # its own platform (``ev.platform`` may be "_other")
    epoch: int = 0  # how many label decisions its account had had, this one's included


class Ambiguous(AssertionError):
    """The data set has a record whose lateness depends on the worker's interleaving."""


@dataclass
class OracleResult:
    series: dict[str, dict[Labels, float]]
    rejected: dict[str, int]
    late: int
    duplicates: int
    applied: int
    now: int
    overflow: dict[str, int] = field(default_factory=dict)  # kind -> events
    forwarded: int = 0  # valid records read outside their account's home partition
    # (account, window, ranking) -> post id -> exact count (``check_top_posts``)
    posts: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)


CAMPAIGN_TYPES = frozenset({"impression", "click", "conversion", "purchase", "spend"})
# What top posts are ranked by (SPEC §3): the events each ranking counts.
POST_RANKINGS = {
    "engagements": frozenset({"like", "comment", "share", "save"}),
    "impressions": frozenset({"impression"}),
    "clicks": frozenset({"click"}),
}
TOP_N = 10


def home_partition(account: str, partitions: int) -> int:
    """Kafka's default partitioner (aiokafka's implementation, not the worker's)."""
    return (murmur2(account.encode()) & 0x7FFFFFFF) % partitions


def account_share(max_accounts: int, partitions: int, p: int) -> int:
    return max_accounts // partitions + (1 if p < max_accounts % partitions else 0)


def _ratio(n: float, d: float) -> float | None:
    return n / d if d > 0 else None


@dataclass
class _Oracle:
    settings: Settings
    wall_ms: int
    series: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))
    # (account, window, ranking) -> post id -> exact count
    posts: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=dict)

    def put(self, name: str, labels: Labels, value: float | None) -> None:
        if value is not None:
            self.series[name][labels] = float(value)


OTHER = "_other"


@dataclass
class _Caps:
    """Admission of label values per partition (see the module docstring)."""

    settings: Settings
    admitted: Collection[str] | None
    # account -> (decision, newest bucket of the largest window with an event of it)
    decisions: dict[str, list[Any]] = field(default_factory=dict)
    holders: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # slots
    per_account: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # account -> label decisions so far: lifetime totals restart with each (SPEC §4)
    epochs: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def _lapsed(self, seen_bucket: int, clock: int) -> bool:
        s = self.settings
        return (seen_bucket + 1) * s.window_specs[-1].bucket_ms <= clock - s.retention_ms

    def apply(self, p: int, ev: Event, clock: int) -> Event:
        s = self.settings
        account = ev.account
        seen = ev.ts // s.window_specs[-1].bucket_ms
        d = self.decisions.setdefault(account, [None, -1])
        holders = self.holders[p]
        if seen > d[1]:
            if d[0] is not None and self._lapsed(d[1], clock):
                holders.discard(account)
                d[0] = None
            d[1] = seen
        if d[0] is None:
            self.epochs[account] += 1
            share = account_share(s.max_accounts, s.topic_partitions, p)
            if len(holders) >= share:
                for other in list(holders):
                    if self._lapsed(self.decisions[other][1], clock):
                        self.decisions[other][0] = None
                        holders.discard(other)
            d[0] = len(holders) < share
            if d[0]:
                holders.add(account)
        if self.admitted is not None:
            assert d[0] == (account in self.admitted), (account, d[0])
        if not d[0]:
            self.overflow["account"] += 1
            ev = replace(ev, account=OTHER, campaign=None, agent=None, team=None)
        changes: dict[str, Any] = {}
        for kind, cap in (("campaign", s.max_campaigns_per_account),
                          ("platform", s.max_platforms_per_account),
                          ("goal", s.max_goals_per_account),
                          ("currency", s.max_currencies_per_account),
                          ("agent", s.max_agents_per_account),
                          ("team", s.max_teams_per_account)):
            value = getattr(ev, kind)
            if value is None:
                continue
            # the overflowed accounts of a partition share "_other"'s admitted values
            holder = account if d[0] else f"{OTHER}/{p}"
            seen_values = self.per_account.setdefault((holder, kind), set())
            if value in seen_values:
                continue
            if len(seen_values) < cap:
                seen_values.add(value)
            else:
                self.overflow[kind] += 1
                changes[kind] = OTHER
        return replace(ev, **changes) if changes else ev

    def overflowed(self) -> set[str]:
        return {a for a, d in self.decisions.items() if d[0] is False}

    def platforms_of(self, account: str) -> set[str]:
        return self.per_account.get((account, "platform"), set())


@dataclass
class _Home:
    """The valid records one home partition applies: its own (offset order) and forwarded."""

    own: list[tuple[int, Event]] = field(default_factory=list)
    forwarded: list[tuple[int, int, Event]] = field(default_factory=list)  # (source, offset, ev)


def run(
    records: Iterable[tuple[int, int, bytes]], settings: Settings, wall_ms: int,
    admitted: Collection[str] | None = None, owners: Collection[Collection[int]] | None = None,
) -> OracleResult:
    """``records``: (partition, offset, value) of the input topic in any order; the oracle sorts
    them. ``admitted``: the accounts the caps must admit (checked). ``owners``: the partitions
    of each worker, when several export; with the event clock each worker's windows end at the
    newest event time of its own partitions."""
    retention = settings.retention_ms
    event_clock = settings.clock == "event"
    n = settings.topic_partitions
    caps = _Caps(settings, admitted)
    by_partition: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for p, o, v in records:
        by_partition[p].append((o, v))
    rejected: dict[str, int] = defaultdict(int)
    homes: dict[int, _Home] = defaultdict(_Home)
    forwarded = 0
    for p, recs in sorted(by_partition.items()):
        for o, raw in sorted(recs, key=lambda r: r[0]):
            ev = parse(raw, now_ms=wall_ms, max_bytes=settings.max_record_bytes,
                       future_tolerance_ms=int(settings.future_tolerance_seconds * 1000))
            if isinstance(ev, Rejected):
                rejected[ev.reason.value] += 1
                continue
            home_of = home_partition(ev.account, n)
            if home_of == p:
                homes[home_of].own.append((o, ev))
            else:
                homes[home_of].forwarded.append((p, o, ev))
                forwarded += 1
    late = dups = 0
    applied: list[Applied] = []
    stream_time: dict[int, int] = {}
    for p, home in sorted(homes.items()):
        decided = _lateness(home, retention, wall_ms if not event_clock else None)
        st = -1
        seen: set[tuple[str, str]] = set()
        for ev, is_late in decided:
            if is_late:
                late += 1
                continue
            st = max(st, ev.ts)
            key = (ev.account, ev.event_id)
            if key in seen:
                dups += 1
                continue
            seen.add(key)
            clock = st if event_clock else wall_ms
            labelled = caps.apply(p, ev, clock)
            applied.append(Applied(labelled, p, clock, ev.account, ev.platform,
                                   caps.epochs[ev.account]))
        stream_time[p] = st if event_clock else wall_ms  # from here on: the partition's clock
    now = max(stream_time.values(), default=-1) if event_clock else wall_ms
    # The clock each partition's accounts are exported with: its worker's.
    clock_of = {p: now for p in stream_time}
    if event_clock and owners:
        for group in owners:
            group_now = max((stream_time[p] for p in group if p in stream_time), default=-1)
            clock_of.update({p: group_now for p in group if p in stream_time})
    result = _Oracle(settings, wall_ms)
    _kpis(result, applied, stream_time, clock_of, caps)
    return OracleResult(dict(result.series), dict(rejected), late, dups, len(applied), now,
                        dict(caps.overflow), forwarded, result.posts)


def _lateness(home: _Home, retention: int, wall: int | None) -> list[tuple[Event, bool]]:
    """The home's records in the oracle's order, each with its late decision (``Ambiguous``
    if another interleaving could decide otherwise). ``wall``: the wall clock, if that is the
    clock (then no interleaving matters)."""
    if wall is not None:
        return [(ev, ev.ts < wall - retention)
                for ev in [e for _o, e in home.own] + [e for _p, _o, e in home.forwarded]]
    everything = [e.ts for _o, e in home.own] + [e.ts for _p, _o, e in home.forwarded]
    forwarded_max = max((e.ts for _p, _o, e in home.forwarded), default=-1)
    out: list[tuple[Event, bool]] = []
    own_st = -1  # stream time from the home's own records: surely there before the next one
    own_max = -1  # every own record before, late ones too (upper bound)
    for _o, ev in home.own:
        lower, upper = own_st, max(own_max, forwarded_max)
        out.append((ev, _decide(ev, lower, upper, retention)))
        if not out[-1][1]:
            own_st = max(own_st, ev.ts)
        own_max = max(own_max, ev.ts)
    per_source: dict[int, int] = defaultdict(lambda: -1)
    upper_all = max(everything, default=-1)
    for src, _o, ev in home.forwarded:
        lower = per_source[src]
        out.append((ev, _decide(ev, lower, upper_all, retention)))
        if not out[-1][1]:
            per_source[src] = max(lower, ev.ts)
    return out


def _decide(ev: Event, lower: int, upper: int, retention: int) -> bool:
    if ev.ts < lower - retention:
        return True
    if ev.ts >= upper - retention:
        return False
    raise Ambiguous(f"event {ev.event_id} of {ev.account} is late or not depending on the "
                    "order its home partition meets forwarded records in")


def _kpis(
    o: _Oracle, applied: list[Applied], stream_time: dict[int, int], clock_of: dict[int, int],
    caps: _Caps,
) -> None:
    s = o.settings
    # an account lives in one partition ("_other" in many, with one worker: one clock)
    now_of: dict[str, int] = {a.ev.account: clock_of[a.partition] for a in applied}
    retention = s.retention_ms
    windows = s.window_specs
    largest = windows[-1]
    accounts = sorted({a.ev.account for a in applied})
    # --- replies matched to messages of the same account, in processing order per partition
    # (SPEC: reply.ts - ts); keyed by the account itself, "_other" stands for many
    messages: dict[tuple[str, str], Applied] = {}
    orphans: dict[tuple[str, str], list[Applied]] = defaultdict(list)
    pairs: list[tuple[Applied, Applied]] = []  # (reply, message)
    met: list[Applied] = []  # per pair, the event that made it (the later of the two)
    for a in applied:  # already in per-partition processing order
        ev = a.ev
        if ev.type in ("comment", "mention"):
            key = (a.source, ev.event_id)
            messages[key] = a
            for r in orphans.pop(key, []):
                if r.ev.ts >= a.clock - retention:
                    pairs.append((r, a))
                    met.append(a)
        elif ev.type == "reply":
            key = (a.source, ev.in_reply_to or "")
            m = messages.get(key)
            if m is not None and m.ev.ts >= a.clock - retention:
                pairs.append((a, m))
                met.append(a)
            else:
                orphans[key].append(a)
    answered = {(m.source, m.ev.event_id) for _r, m in pairs}
    resolved = {(m.source, m.ev.event_id) for r, m in pairs if r.ev.resolved}

    # --- followers (not windowed): per account and real platform, known from a snapshot on;
    # exported under the account's label and platform label (over the cap: "_other")
    followers: dict[tuple[str, str], float] = defaultdict(float)
    follower_platforms: set[tuple[str, str]] = set()
    fevents: dict[tuple[str, str], list[Applied]] = defaultdict(list)
    for a in applied:
        if a.ev.type in ("followers", "follow", "unfollow"):
            fevents[(a.source, a.source_platform)].append(a)
    overflowed = caps.overflowed()
    for (facc, fplat), fas in fevents.items():
        label = OTHER if facc in overflowed else facc
        plat = fplat if fplat in caps.platforms_of(facc) else OTHER
        follower_platforms.add((label, plat))
        evs = [fa.ev for fa in fas]
        snaps = [e for e in evs if e.type == "followers"]
        if not snaps:
            continue  # no count known
        snap_ts, count = -1, 0
        for e in snaps:  # in processing order; a later arrival wins a tie
            if e.ts >= snap_ts:
                snap_ts, count = e.ts, e.count or 0
        delta = sum(1 if e.type == "follow" else -1 for e in evs
                    if e.type in ("follow", "unfollow") and e.ts > snap_ts)
        followers[(label, plat)] += count + delta

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
        need_of: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for a in window_applied:
            by_ap[(a.ev.account, a.ev.platform)].append(a.ev)
            by_ap[(a.ev.account, "all")].append(a.ev)
            if a.ev.type in ("comment", "mention") and a.ev.needs_response:
                for plat in (a.ev.platform, "all"):
                    need_of[(a.ev.account, plat)].append((a.source, a.ev.event_id))
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
                market = market_of(a.source)
                market_mentions[(market, a.ev.platform)] += 1
                market_mentions[(market, "all")] += 1
        replies_of: dict[str, list[Applied]] = defaultdict(list)
        for a in window_applied:
            if a.ev.type == "reply":
                replies_of[a.ev.account].append(a)
        window_pairs: dict[str, list[tuple[Applied, Applied]]] = defaultdict(list)
        for r, m in pairs:
            if lo <= r.ev.ts < hi:
                window_pairs[r.ev.account].append((r, m))
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
                in_window = [(r, m) for r, m in window_pairs.get(acc, ())
                             if plat == "all" or r.ev.platform == plat]
                rt = [max(0, r.ev.ts - m.ev.ts) / 1000.0 for r, m in in_window]
                brt = [business_seconds(hours, m.ev.ts, r.ev.ts) for r, m in in_window
                       if (hours := s.business_hours_of(r.source)) is not None]
                need_keys = need_of.get((acc, plat), [])
                _window(o, (acc, plat, w.label), evs, fol, rt, brt,
                        sum(1 for k in need_keys if k in answered),
                        sum(1 for k in need_keys if k in resolved),
                        # "_other" spans markets: no share of voice of its own
                        0 if acc == OTHER else market_mentions[(market_of(acc), plat)])
            camp: dict[str, list[Event]] = defaultdict(list)
            for e in by_ap.get((acc, "all"), []):
                # A campaign series exists once the campaign has an event that a campaign KPI
                # counts (SPEC §4 lists them): a like tagged with a campaign makes none.
                if e.campaign is not None and e.type in CAMPAIGN_TYPES:
                    camp[e.campaign].append(e)
            for name, evs in camp.items():
                _campaign(o, (acc, name, w.label), evs)
            if acc != OTHER:
                for ranking, types in POST_RANKINGS.items():
                    counts: dict[str, int] = defaultdict(int)
                    for e in by_ap.get((acc, "all"), []):
                        if e.type in types and e.post_id is not None:
                            counts[e.post_id] += 1
                    o.posts[(acc, w.label, ranking)] = dict(counts)
            if acc != OTHER and replies_of.get(acc):
                _staff(o, acc, w.label, replies_of[acc], window_pairs.get(acc, []))

    _lifetime(o, applied, pairs, met, caps)

    # --- current values
    sla_ms = s.response_sla_seconds * 1000
    # grouped once: a cardinality test has a thousand accounts and a million events
    of_account: dict[str, list[Applied]] = defaultdict(list)
    for a in applied:
        of_account[a.ev.account].append(a)
    messages_of: dict[str, list[tuple[str, Applied]]] = defaultdict(list)
    for (_source, mid), m in messages.items():
        messages_of[m.ev.account].append((mid, m))
    for acc in accounts:
        plats = {"all"} | {p for (fa, p) in follower_platforms if fa == acc}
        pending: dict[str, int] = defaultdict(int)
        overdue: dict[str, int] = defaultdict(int)
        for mid, m in messages_of[acc]:
            if not m.ev.needs_response or (m.source, mid) in answered:
                continue
            if m.ev.ts < stream_time[m.partition] - retention:
                continue
            # the SLA counts business time for an account with business hours (SPEC §3)
            hours = s.business_hours_of(m.source)
            waited_ms = (business_seconds(hours, m.ev.ts, now_of[acc]) * 1000
                         if hours is not None else now_of[acc] - m.ev.ts)
            for p in (m.ev.platform, "all"):
                pending[p] += 1
                if waited_ms > sla_ms:
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


# The response-time histogram's upper bounds in seconds (SPEC §4), +Inf after the last.
RESPONSE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 2700, 3600, 5400, 7200, 10800, 14400,
                    28800, 43200, 86400, 172800)


def _lifetime(o: _Oracle, applied: list[Applied], pairs: list[tuple[Applied, Applied]],
              met: list[Applied], caps: _Caps) -> None:
    """Lifetime totals (SPEC §4): every applied event of an account since its latest label
    decision, per platform and ``all``; "_other" on ``all`` per partition (never restarted).
    Care totals from the replies that met their message while the account held its label."""
    groups: dict[tuple[str, str], list[Event]] = defaultdict(list)  # (label, partition)
    for a in applied:
        if a.ev.account == OTHER:
            groups[(OTHER, str(a.partition))].append(a.ev)
        elif a.epoch == caps.epochs[a.source]:
            groups[(a.ev.account, "")].append(a.ev)
    for (label, part), evs in groups.items():
        platforms = {"all"} if label == OTHER else {"all", *(e.platform for e in evs)}
        for plat in platforms:
            mine = evs if plat == "all" else [e for e in evs if e.platform == plat]
            _totals(o, (label, plat, part), mine)
    answered: set[tuple[str, str]] = set()
    resolved: set[tuple[str, str]] = set()
    # (account, platform) -> [answered, resolved, response seconds...]
    care: dict[tuple[str, str], list[Any]] = {}
    for (r, m), a in zip(pairs, met, strict=True):
        key = (m.source, m.ev.event_id)
        counted = a.ev.account != OTHER and a.epoch == caps.epochs[a.source]
        if counted:
            care.setdefault((a.ev.account, r.ev.platform), [0, 0, []])[2].append(
                max(0, r.ev.ts - m.ev.ts) / 1000.0)
        if not m.ev.needs_response:
            continue
        new_answer = key not in answered
        new_resolve = bool(r.ev.resolved) and key not in resolved
        answered.add(key)
        if r.ev.resolved:
            resolved.add(key)
        if counted and (new_answer or new_resolve):
            slot = care.setdefault((a.ev.account, m.ev.platform), [0, 0, []])
            slot[0] += new_answer
            slot[1] += new_resolve
    for acc in {acc for acc, _p in care}:
        per_platform = {p: v for (a2, p), v in care.items() if a2 == acc}
        per_platform["all"] = [sum(v[0] for v in per_platform.values()),
                               sum(v[1] for v in per_platform.values()),
                               [x for v in per_platform.values() for x in v[2]]]
        for plat, (n_answered, n_resolved, seconds) in per_platform.items():
            base = (acc, plat, "")
            o.put("social_messages_answered_total", base, n_answered)
            o.put("social_messages_resolved_total", base, n_resolved)
            if not seconds:
                continue
            for bound in (*RESPONSE_BUCKETS, math.inf):
                le = "+Inf" if bound == math.inf else repr(float(bound))
                o.put("social_response_seconds_bucket", (*base, le),
                      sum(1 for x in seconds if x <= bound))
            o.put("social_response_seconds_count", base, len(seconds))
            o.put("social_response_seconds_sum", base, sum(seconds))


def _totals(o: _Oracle, base: Labels, evs: list[Event]) -> None:
    put = o.put
    for name, t in (("impressions", "impression"), ("likes", "like"), ("comments", "comment"),
                    ("shares", "share"), ("saves", "save"), ("clicks", "click"),
                    ("mentions", "mention"), ("replies", "reply"), ("follows", "follow"),
                    ("unfollows", "unfollow"), ("visits", "visit"), ("leads", "lead"),
                    ("reviews", "review")):
        put(f"social_{name}_total", base, _count(evs, t))
    put("social_paid_impressions_total", base,
        sum(1 for e in evs if e.type == "impression" and e.paid))
    visits = [e for e in evs if e.type == "visit"]
    put("social_page_views_total", base, sum(e.pages or 0 for e in visits))
    put("social_bounced_visits_total", base, sum(1 for e in visits if e.bounced))
    timed = [e.duration_seconds for e in visits if e.duration_seconds is not None]
    put("social_timed_visits_total", base, len(timed))
    put("social_visit_duration_seconds_total", base, sum(timed))
    put("social_potential_reach_total", base, sum(e.author_followers or 0 for e in evs
                                                  if e.type in ("share", "mention")))
    put("social_review_stars_total", base, sum(e.rating or 0 for e in evs if e.type == "review"))
    messages = [e for e in evs if e.type in ("comment", "mention")]
    put("social_messages_needing_response_total", base,
        sum(1 for e in messages if e.needs_response))
    sent = [e.sentiment for e in messages if e.sentiment is not None]
    put("social_sentiment_messages_total", base, len(sent))
    put("social_positive_messages_total", base, sum(1 for x in sent if x > 0.25))
    put("social_negative_messages_total", base, sum(1 for x in sent if x < -0.25))
    put("social_sentiment_gain_total", base, sum(x for x in sent if x > 0))
    put("social_sentiment_loss_total", base, sum(-x for x in sent if x < 0))
    surveys = [e for e in evs if e.type == "survey"]
    csat = [e.score or 0 for e in surveys if e.survey == "csat"]
    nps = [e.score or 0 for e in surveys if e.survey == "nps"]
    put("social_csat_answers_total", base, len(csat))
    put("social_csat_satisfied_answers_total", base, sum(1 for x in csat if x >= 4))
    put("social_nps_answers_total", base, len(nps))
    put("social_nps_promoters_total", base, sum(1 for x in nps if x >= 9))
    put("social_nps_detractors_total", base, sum(1 for x in nps if x <= 6))
    for e in evs:
        if e.type == "conversion":
            _add_to(o, "social_conversions_total", (*base, e.goal or ""), 1)
        elif e.type == "purchase":
            _add_to(o, "social_orders_total", (*base, e.currency or ""), 1)
            _add_to(o, "social_revenue_total", (*base, e.currency or ""), e.amount or 0.0)
        elif e.type == "spend":
            _add_to(o, "social_spend_total", (*base, e.currency or ""), e.amount or 0.0)


def _add_to(o: _Oracle, name: str, labels: Labels, value: float) -> None:
    o.series[name][labels] = o.series[name].get(labels, 0.0) + float(value)


def _count(evs: list[Event], t: str) -> int:
    return sum(1 for e in evs if e.type == t)


def _window(
    o: _Oracle, base: Labels, evs: list[Event], followers: float | None, rt: list[float],
    brt: list[float], answered: int, resolved: int, market_mentions: int,
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
    _quantiles(o, "social_response_time_seconds", base, rt)
    _quantiles(o, "social_response_time_business_seconds", base, brt)
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


def _quantiles(o: _Oracle, name: str, base: Labels, values: list[float]) -> None:
    """Quantiles by rank (the sketch's rule), count and sum of the exact values."""
    if not values:
        return
    srt = sorted(values)
    for q in (0.5, 0.9, 0.99):
        o.put(name, (*base, str(q)), srt[int(q * (len(srt) - 1))])
    o.put(name + "_count", base, len(srt))
    o.put(name + "_sum", base, sum(srt))


@functools.lru_cache(maxsize=1 << 16)
def business_seconds(hours: BusinessHours, start_ms: int, end_ms: int) -> float:
    """Working seconds in [start, end), walked minute by minute of UTC: every shift starts and
    ends on a whole local minute, and the zones' offsets are whole minutes, so whether the team
    works is the same all through each UTC minute; the local wall time of each minute says it
    (``datetime.fromtimestamp`` knows the zone's daylight saving time)."""
    if end_ms <= start_ms:
        return 0.0
    zone = ZoneInfo(hours.timezone)
    total = 0
    t = start_ms
    while t < end_ms:
        nxt = min(end_ms, (t // 60_000 + 1) * 60_000)
        local = datetime.fromtimestamp(t / 1000, zone)
        minute = local.hour * 60 + local.minute
        if (local.weekday() in hours.days and local.date() not in hours.holidays
                and any(sh.start_minute <= minute < sh.end_minute for sh in hours.shifts)):
            total += nxt - t
        t = nxt
    return total / 1000.0


def _staff(o: _Oracle, acc: str, label: str, replies: list[Applied],
           pairs: list[tuple[Applied, Applied]]) -> None:
    """The agent and team KPIs of one account and window (replies in the window; response
    times of those that met their message)."""
    s = o.settings
    for kind in ("agent", "team"):
        slugs = {getattr(r.ev, kind) for r in replies} - {None}
        for slug in slugs:
            mine = [r for r in replies if getattr(r.ev, kind) == slug]
            base = (acc, slug, label)
            o.put(f"social_{kind}_replies", base, len(mine))
            o.put(f"social_{kind}_resolution_ratio", base,
                  _ratio(sum(1 for r in mine if r.ev.resolved), len(mine)))
            matched = [(r, m) for r, m in pairs if getattr(r.ev, kind) == slug]
            _quantiles(o, f"social_{kind}_response_time_seconds", base,
                       [max(0, r.ev.ts - m.ev.ts) / 1000.0 for r, m in matched])
            _quantiles(o, f"social_{kind}_response_time_business_seconds", base,
                       [business_seconds(h, m.ev.ts, r.ev.ts) for r, m in matched
                        if (h := s.business_hours_of(r.source)) is not None])


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


def check_top_posts(
    expected: dict[tuple[str, str, str], dict[str, int]],
    worker: dict[str, dict[str, dict[str, dict[str, Any]]]],
) -> list[str]:
    """Every way the worker's top posts (``worker[account][window][ranking]``, as ``GET /kpis``
    gives them) break the sketch's guarantee against the exact counts: the top ``TOP_N`` must
    hold every post whose true count exceeds the ``TOP_N``-th largest by more than the error
    bound, each listed post's true count must lie within its bounds, and the total must be
    exact."""
    problems: list[str] = []
    for (acc, window, ranking), counts in sorted(expected.items()):
        got = worker.get(acc, {}).get(window, {}).get(ranking)
        if got is None:
            if counts:
                problems.append(f"{acc} {window} {ranking}: no top posts (oracle {len(counts)})")
            continue
        where = f"{acc} {window} {ranking}"
        if got["total"] != sum(counts.values()):
            problems.append(f"{where}: total {got['total']} != {sum(counts.values())}")
        bound = got["error_bound"]
        listed = {p["item"]: p for p in got["posts"]}
        if len(got["posts"]) != min(TOP_N, len(counts)):
            problems.append(f"{where}: {len(got['posts'])} posts listed, {len(counts)} exist")
        true = sorted(counts.values(), reverse=True)
        tenth = true[TOP_N - 1] if len(true) >= TOP_N else 0
        for post, n in counts.items():
            if n > tenth + bound and post not in listed:
                problems.append(f"{where}: {post} ({n}, 10th {tenth}, bound {bound}) missing")
        for post, p in listed.items():
            n = counts.get(post, 0)
            if not p["lower_bound"] <= n <= p["upper_bound"]:
                problems.append(f"{where}: {post} true {n} outside "
                                f"[{p['lower_bound']}, {p['upper_bound']}]")
    return problems


# Series whose value comes from a sketch (or is a ratio over one): compared within 2 %.
APPROXIMATE = {
    "social_reach", "social_unique_visitors", "social_engagement_rate_by_reach_ratio",
    "social_customer_lifetime_value", "social_response_time_seconds",
    "social_response_time_business_seconds", "social_agent_response_time_seconds",
    "social_agent_response_time_business_seconds", "social_team_response_time_seconds",
    "social_team_response_time_business_seconds",
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
