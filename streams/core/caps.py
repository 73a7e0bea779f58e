"""Label caps (SPEC §4): how many accounts a deployment exports, and per account how many
campaigns, platforms, goals, currencies, agents and teams; an event over a cap counts under
``_other``.

The account cap bounds the deployment, not a worker: each input partition holds a fixed share of
``max_accounts`` slots (``account_share``), so any number of workers, owning any partitions,
export at most the cap between them. The decision is taken once per account and partition, from
that partition's state alone, and stored in the account's core (``AccountCore.label``), so a
replay after a crash or a takeover decides the same way as the first pass. A decision lapses once
the account has had no event for the retention horizon: nothing of it is left in any window then
(its lifetime state stays in its core), and its slot goes to the next account that needs one.

The per-account sets only ever grow and are persisted with the core, for the same reason.
"""

from __future__ import annotations

from schemas.events import Event
from streams.core.aggregates import ADMITTED, OVERFLOW, UNDECIDED, AccountCore
from streams.core.keys import totals_key
from streams.core.labels import OTHER_ACCOUNT, OTHER_CAMPAIGN, OTHER_LABEL, other_of_market
from streams.core.outcome import Outcome
from streams.core.partition import PartitionState
from streams.settings import Settings


def account_share(max_accounts: int, partitions: int, p: int) -> int:
    """The account slots of partition ``p``: ``max_accounts`` split as evenly as it goes."""
    base, extra = divmod(max_accounts, partitions)
    return base + (1 if p < extra else 0)


class LabelCaps:
    """Decides an event's account label and relabels what is over a per-account cap."""

    def __init__(self, settings: Settings, decision_ms: int, retention_ms: int) -> None:
        self.settings = settings
        self.max_accounts = settings.max_accounts
        self.partitions = settings.topic_partitions
        self.max_campaigns = settings.max_campaigns_per_account
        self.max_platforms = settings.max_platforms_per_account
        self.max_goals = settings.max_goals_per_account
        self.max_currencies = settings.max_currencies_per_account
        self.max_agents = settings.max_agents_per_account
        self.max_teams = settings.max_teams_per_account
        # A decision is remembered per bucket of this length (the largest window's), and lapses
        # once that bucket is older than the retention horizon.
        self.decision_ms = decision_ms
        self.retention_ms = retention_ms

    def lapses_at(self, core: AccountCore) -> int:
        """The clock at which the account's decision is older than the retention horizon."""
        return (core.seen_bucket + 1) * self.decision_ms + self.retention_ms

    def lapsed(self, core: AccountCore, clock: int) -> bool:
        return self.lapses_at(core) <= clock

    def release(self, ps: PartitionState, p: int, account: str, core: AccountCore) -> None:
        """The account's decision lapsed: its slot (if it held one) is free again, and its
        lifetime totals go with it (``streams.core.totals``: they start again from 0)."""
        ps.admitted.discard(account)
        core.label = UNDECIDED
        core.care_totals = {}
        ps.dirty_cores.add(account)
        if ps.totals.pop(account, None) is not None:
            ps.dirty_totals.discard(account)
            ps.dirty_deleted.append(totals_key(p, account))

    def decide(self, ps: PartitionState, p: int, account: str, core: AccountCore,
               clock: int) -> None:
        """Give an undecided account a slot if partition ``p`` has one free at ``clock``."""
        share = account_share(self.max_accounts, self.partitions, p)
        if len(ps.admitted) >= share and clock >= ps.next_lapse:
            # Slots whose accounts went quiet are given back before anyone is refused.
            soonest = None
            for name in list(ps.admitted):
                other = ps.cores[name]
                at = self.lapses_at(other)
                if at <= clock:
                    self.release(ps, p, name, other)
                elif soonest is None or at < soonest:
                    soonest = at
            ps.next_lapse = soonest if soonest is not None else -1
        if len(ps.admitted) < share:
            core.label = ADMITTED
            ps.admitted.add(account)
            at = self.lapses_at(core)
            if ps.next_lapse < 0 or at < ps.next_lapse:
                ps.next_lapse = at
        else:
            core.label = OVERFLOW
        ps.dirty_cores.add(account)

    def relabel(
        self, ps: PartitionState, core: AccountCore, ev: Event, offset: int, rekeyed: bool,
        out: Outcome,
    ) -> str:
        """The internal account the event's buckets are under (its own, or its market's
        ``_other``), after relabelling the values over a per-account cap.

        An admitted account's values are admitted in its own core; those of the overflowed
        accounts of a partition in one shared core (``_other``'s, which holds nothing else), so
        that ``_other`` stays within the caps however many accounts it stands for. Only a
        record the admitting core has not applied yet may grow its sets (a replayed one decides
        from what is already there)."""
        account = label = ev.account
        if core.label == OVERFLOW:
            out.overflow_accounts += 1
            label = other_of_market(self.settings.market_of(account))
            ps.others.add(label)
            # "_other" stands for many accounts: no campaign or staff series of its own
            ev.campaign = ev.agent = ev.team = None
            account = OTHER_ACCOUNT
            holder = ps.cores.get(account)
            if holder is None:
                holder = ps.cores[account] = AccountCore()
            core = holder
        fresh = offset > (core.applied_rekeyed if rekeyed else core.applied)
        if fresh and account == OTHER_ACCOUNT:
            if rekeyed:
                core.applied_rekeyed = offset
            else:
                core.applied = offset
            ps.dirty_cores.add(account)
        if ev.campaign is not None and ev.campaign not in core.campaigns:
            if len(core.campaigns) < self.max_campaigns:
                if fresh:
                    core.campaigns.add(ev.campaign)
                    ps.dirty_cores.add(account)
            else:
                out.overflow_campaigns += 1
                ev.campaign = OTHER_CAMPAIGN
        # Each capped label of the event (SPEC §4), in this order, against the core's admitted set.
        for kind, admitted, cap in (
                ("platform", core.platforms, self.max_platforms),
                ("goal", core.goals, self.max_goals),
                ("currency", core.currencies, self.max_currencies),
                ("agent", core.agents, self.max_agents),
                ("team", core.teams, self.max_teams)):
            value = getattr(ev, kind)
            if value is not None and value not in admitted and not _admit_label(
                    admitted, value, cap, fresh, ps, account):
                out.overflow(kind)
                setattr(ev, kind, OTHER_LABEL)
        return label


def _admit_label(
    admitted: set[str], value: str, cap: int, fresh: bool, ps: PartitionState, account: str
) -> bool:
    if len(admitted) >= cap:
        return False
    if fresh:
        admitted.add(value)
        ps.dirty_cores.add(account)
    return True
