"""What each event type adds: to a bucket (plain functions over one PlatformAgg), to a
campaign, and to the account core (messages, reply matching, followers, lifetime value).

SPEC §3 gives the formulas these counters feed; ``streams.core.kpis`` turns them into KPIs.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.events import Event
from streams.core.aggregates import (
    ADMITTED,
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
    AccountCore,
    Bucket,
    CareSlot,
    Followers,
    Message,
    PlatformAgg,
    StaffSlot,
    own,
    staff_key,
)
from streams.core.schedule import BusinessHours
from streams.core.scores import CSAT_SATISFIED, nps_class, polarity
from streams.core.sketches import Hll, Quantiles
from streams.core.windows import Window, WindowFloors

BucketRule = Callable[[PlatformAgg, Event], None]


def _impression(a: PlatformAgg, ev: Event) -> None:
    c = a.counts
    c[IMPRESSIONS] += 1
    if ev.paid:
        c[PAID_IMPRESSIONS] += 1
    if ev.user_id is not None:
        if a.reach is None:
            a.reach = Hll()
        a.reach.add(ev.user_id)


def _counter(slot: int) -> Callable[[PlatformAgg, Event], None]:
    def rule(a: PlatformAgg, ev: Event) -> None:
        a.counts[slot] += 1

    return rule


def _sentiment(c: list[float], s: float | None) -> None:
    if s is not None:
        c[SENTIMENT_SUM] += s
        c[SENTIMENT_N] += 1
        side = polarity(s)
        if side > 0:
            c[SENTIMENT_POS] += 1
        elif side < 0:
            c[SENTIMENT_NEG] += 1


def _comment(a: PlatformAgg, ev: Event) -> None:
    c = a.counts
    c[COMMENTS] += 1
    if ev.needs_response:
        c[NEEDS_RESPONSE] += 1
    _sentiment(c, ev.sentiment)


def _mention(a: PlatformAgg, ev: Event) -> None:
    c = a.counts
    c[MENTIONS] += 1
    if ev.needs_response:
        c[NEEDS_RESPONSE] += 1
    if ev.author_followers is not None:
        c[POTENTIAL_REACH] += ev.author_followers
    _sentiment(c, ev.sentiment)


def _share(a: PlatformAgg, ev: Event) -> None:
    a.counts[SHARES] += 1
    if ev.author_followers is not None:
        a.counts[POTENTIAL_REACH] += ev.author_followers


def _visit(a: PlatformAgg, ev: Event) -> None:
    c = a.counts
    c[VISITS] += 1
    c[PAGE_VIEWS] += ev.pages or 0
    if ev.bounced:
        c[BOUNCED] += 1
    if ev.duration_seconds is not None:
        c[VISIT_DURATION_SUM] += ev.duration_seconds
        c[VISIT_DURATION_N] += 1
    if ev.user_id is not None:
        if a.visitors is None:
            a.visitors = Hll()
        a.visitors.add(ev.user_id)


def _conversion(a: PlatformAgg, ev: Event) -> None:
    a.counts[CONVERSIONS] += 1
    goal = ev.goal or ""
    goals = a.goals = own(a.goals)
    goals[goal] = goals.get(goal, 0) + 1


def _purchase(a: PlatformAgg, ev: Event) -> None:
    a.counts[ORDERS] += 1
    cur = ev.currency or ""
    revenue = a.revenue = own(a.revenue)
    revenue[cur] = revenue.get(cur, 0.0) + (ev.amount or 0.0)
    orders = a.orders_cur = own(a.orders_cur)
    orders[cur] = orders.get(cur, 0) + 1


def _spend(a: PlatformAgg, ev: Event) -> None:
    cur = ev.currency or ""
    spend = a.spend = own(a.spend)
    spend[cur] = spend.get(cur, 0.0) + (ev.amount or 0.0)


def _survey(a: PlatformAgg, ev: Event) -> None:
    c = a.counts
    score = ev.score or 0
    if ev.survey == "csat":
        c[CSAT_N] += 1
        c[CSAT_GOOD] += score >= CSAT_SATISFIED
    else:
        c[NPS_N] += 1
        kind = nps_class(score)
        c[NPS_PROMOTERS] += kind > 0
        c[NPS_DETRACTORS] += kind < 0


def _review(a: PlatformAgg, ev: Event) -> None:
    a.counts[REVIEWS] += 1
    a.counts[RATING_SUM] += ev.rating or 0


def _present(a: PlatformAgg, ev: Event) -> None:
    """A followers snapshot adds to no windowed count, but its platform is one the account has
    in the window: its series are exported (zeros, and ratios over the follower count)."""


BUCKET_RULES: dict[str, Callable[[PlatformAgg, Event], None]] = {
    "followers": _present,
    "impression": _impression,
    "like": _counter(LIKES),
    "save": _counter(SAVES),
    "comment": _comment,
    "share": _share,
    "click": _counter(CLICKS),
    "mention": _mention,
    "reply": _counter(REPLIES),
    "follow": _counter(FOLLOWS),
    "unfollow": _counter(UNFOLLOWS),
    "visit": _visit,
    "lead": _counter(LEADS),
    "conversion": _conversion,
    "purchase": _purchase,
    "spend": _spend,
    "survey": _survey,
    "review": _review,
}
CORE_TYPES = frozenset({"comment", "mention", "reply", "followers", "follow", "unfollow",
                         "purchase"})


def apply_campaign(b: Bucket, ev: Event) -> None:
    t = ev.type
    if t == "impression":
        b.campaign(ev.campaign or "").counts[C_IMPRESSIONS] += 1
    elif t == "click":
        b.campaign(ev.campaign or "").counts[C_CLICKS] += 1
    elif t == "conversion":
        b.campaign(ev.campaign or "").counts[C_CONVERSIONS] += 1
    elif t == "purchase":
        ca = b.campaign(ev.campaign or "")
        cur = ev.currency or ""
        revenue = ca.revenue = own(ca.revenue)
        revenue[cur] = revenue.get(cur, 0.0) + (ev.amount or 0.0)
    elif t == "spend":
        ca = b.campaign(ev.campaign or "")
        cur = ev.currency or ""
        spend = ca.spend = own(ca.spend)
        spend[cur] = spend.get(cur, 0.0) + (ev.amount or 0.0)


def _staff_keys(agent: str | None, team: str | None) -> list[str]:
    """The staff slots a reply counts in: its agent's and its team's."""
    return [staff_key(kind, slug) for kind, slug in (("agent", agent), ("team", team))
            if slug is not None]


class AccountRules:
    """Applies an event to its account core: the state that ties events together.

    A comment or mention is kept for replies to point to; a reply meets its message (or waits
    for it as an orphan) and adds a response time at the reply's time and care counts at the
    message's; followers snapshots and follow/unfollow deltas; lifetime revenue and customers.
    """

    def __init__(
        self, windows: tuple[Window, ...], retention_ms: int,
        hours_of: Callable[[str], BusinessHours | None] = lambda account: None,
    ) -> None:
        """``hours_of``: the business hours an account follows (``Settings.business_hours_of``),
        read when a reply meets its message: a changed schedule applies from then on."""
        self.windows = windows
        self.retention_ms = retention_ms
        self.hours_of = hours_of
        self._floors = WindowFloors(windows)

    def apply(
        self, core: AccountCore, ev: Event, clock: int, platform: str | None = None
    ) -> None:
        """``platform``: the event's own platform, when a cap relabelled ``ev.platform``
        (followers are kept per real platform; they are summed at export)."""
        t = ev.type
        if t == "comment" or t == "mention":
            msg = Message(ev.ts, ev.platform, ev.needs_response)
            core.messages[ev.event_id] = msg
            core.touch(ev.event_id)
            waiting = core.orphans.pop(ev.event_id, None)
            if waiting:
                horizon = clock - self.retention_ms
                for r_ts, r_platform, r_resolved, *staff in waiting:
                    # Same horizon as expiry, applied here so the result never depends on
                    # whether a flush happened to expire the orphan first.
                    if r_ts >= horizon:
                        agent, team = staff if staff else (None, None)
                        self._answer(core, ev.account, ev.event_id, msg, r_ts, r_platform,
                                     r_resolved, agent, team, clock)
            if msg.needs_response and not msg.answered:
                core.pending.add(ev.event_id)
        elif t == "reply":
            target = ev.in_reply_to or ""
            found = core.messages.get(target)
            if found is not None and found.ts < clock - self.retention_ms:
                found = None  # expired, whether or not a flush has dropped it yet
            core.touch(target)
            if ev.agent is not None or ev.team is not None:
                self._staff_reply(core, ev, clock)
            if found is None:
                core.orphans.setdefault(target, []).append(
                    [ev.ts, ev.platform, ev.resolved, ev.agent, ev.team])
            else:
                self._answer(core, ev.account, target, found, ev.ts, ev.platform, ev.resolved,
                             ev.agent, ev.team, clock)
        elif t == "followers":
            self._followers(core, platform or ev.platform).snapshot(ev.ts, ev.count or 0)
        elif t == "follow":
            self._followers(core, platform or ev.platform).change(ev.ts, 1)
        elif t == "unfollow":
            self._followers(core, platform or ev.platform).change(ev.ts, -1)
        elif t == "purchase":
            cur = ev.currency or ""
            per = core.clv.setdefault(ev.platform, {})
            slot = per.get(cur)
            if slot is None:
                slot = per[cur] = [0.0, Hll()]
            slot[0] += ev.amount or 0.0
            if ev.user_id is not None:
                slot[1].add(ev.user_id)

    @staticmethod
    def _followers(core: AccountCore, platform: str) -> Followers:
        f = core.followers.get(platform)
        if f is None:
            f = core.followers[platform] = Followers()
        return f

    def _staff_reply(self, core: AccountCore, ev: Event, clock: int) -> None:
        """A reply counts for its agent and team at its own time, matched or not."""
        floors = self._floors.at(clock)
        keys = _staff_keys(ev.agent, ev.team)
        for res, w in enumerate(self.windows):
            r_idx = ev.ts // w.bucket_ms
            if r_idx >= floors[res]:
                for key in keys:
                    slot = core.staff_slot(res, r_idx, key)
                    slot.replies += 1
                    slot.resolved += ev.resolved

    def _answer(
        self, core: AccountCore, account: str, msg_id: str, msg: Message, reply_ts: int,
        platform: str, resolved: bool, agent: str | None, team: str | None, clock: int,
    ) -> None:
        """A reply met its message: a response time at the reply's time (all hours, business
        hours if the account has a schedule, for the platform and the reply's agent and team),
        care at the message's."""
        floors = self._floors.at(clock)
        seconds = max(0.0, (reply_ts - msg.ts) / 1000.0)
        lifetime = core.label == ADMITTED  # "_other" has no care totals (SPEC §4)
        if lifetime:
            core.care_total(platform).observe(seconds)
        hours = self.hours_of(account)
        business = hours.seconds_between(msg.ts, reply_ts) if hours is not None else None
        keys = _staff_keys(agent, team)
        for res, w in enumerate(self.windows):
            r_idx = reply_ts // w.bucket_ms
            if r_idx >= floors[res]:
                slots: list[CareSlot | StaffSlot] = [core.care_slot(res, r_idx, platform)]
                slots += [core.staff_slot(res, r_idx, key) for key in keys]
                for slot in slots:
                    if slot.response is None:
                        slot.response = Quantiles()
                    slot.response.add(seconds)
                    if business is not None:
                        if slot.business is None:
                            slot.business = Quantiles()
                        slot.business.add(business)
        if not msg.needs_response:
            return
        newly_answered = not msg.answered
        newly_resolved = resolved and not msg.resolved
        msg.answered = True
        msg.resolved = msg.resolved or resolved
        core.pending.discard(msg_id)
        if not (newly_answered or newly_resolved):
            return
        if lifetime:
            ct = core.care_total(msg.platform)
            ct.answered += newly_answered
            ct.resolved += newly_resolved
        floors = self._floors.at(clock)
        for res, w in enumerate(self.windows):
            m_idx = msg.ts // w.bucket_ms
            if m_idx >= floors[res]:
                slot = core.care_slot(res, m_idx, msg.platform)
                slot.answered += newly_answered
                slot.resolved += newly_resolved
