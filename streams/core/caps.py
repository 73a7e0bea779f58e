"""Label caps (SPEC §4): how many accounts a worker exports, and per account how many campaigns,
platforms, goals and currencies; an event over a cap counts under ``_other``.

Admission only ever grows a set that is persisted with the account's core, so a replay after a
crash decides the same way as the first pass.
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.events import Event
from streams.core.aggregates import AccountCore
from streams.core.labels import OTHER_ACCOUNT, OTHER_CAMPAIGN, OTHER_LABEL
from streams.core.outcome import Outcome
from streams.core.partition import PartitionState
from streams.settings import Settings


class LabelCaps:
    """Admits an event's account and label values, or relabels them ``_other``."""

    def __init__(self, settings: Settings, partitions: Mapping[int, PartitionState]) -> None:
        self.partitions = partitions
        self.max_accounts = settings.max_accounts
        self.max_campaigns = settings.max_campaigns_per_account
        self.max_platforms = settings.max_platforms_per_account
        self.max_goals = settings.max_goals_per_account
        self.max_currencies = settings.max_currencies_per_account

    def admit(
        self, ps: PartitionState, ev: Event, offset: int, out: Outcome
    ) -> AccountCore:
        """The core of ``ev``'s account (created if new), after relabelling what is over a cap.

        ``offset`` is the event's record: only a record the core has not applied yet may grow an
        admitted set (a replayed one decides from what is already there)."""
        account = ev.account
        if account not in ps.cores and not self._admit_account(account):
            out.overflow_accounts += 1
            ev.account = account = OTHER_ACCOUNT
            ev.campaign = None
        core = ps.cores.get(account)
        if core is None:
            core = ps.cores[account] = AccountCore()
            ps.dirty_cores.add(account)  # the account's admission must survive a restart
        fresh = offset > core.applied
        if ev.campaign is not None and ev.campaign not in core.campaigns:
            if len(core.campaigns) < self.max_campaigns:
                if fresh:
                    core.campaigns.add(ev.campaign)
                    ps.dirty_cores.add(account)
            else:
                out.overflow_campaigns += 1
                ev.campaign = OTHER_CAMPAIGN
        if ev.platform not in core.platforms and not _admit_label(
                core.platforms, ev.platform, self.max_platforms, fresh, ps, account):
            out.overflow("platform")
            ev.platform = OTHER_LABEL
        if ev.goal is not None and ev.goal not in core.goals and not _admit_label(
                core.goals, ev.goal, self.max_goals, fresh, ps, account):
            out.overflow("goal")
            ev.goal = OTHER_LABEL
        if ev.currency is not None and ev.currency not in core.currencies and not _admit_label(
                core.currencies, ev.currency, self.max_currencies, fresh, ps, account):
            out.overflow("currency")
            ev.currency = OTHER_LABEL
        return core

    def _admit_account(self, account: str) -> bool:
        if account == OTHER_ACCOUNT:
            return True
        known = 0
        for ps in self.partitions.values():
            if account in ps.cores:
                return True
            known += len(ps.cores)
        return known < self.max_accounts


def _admit_label(
    admitted: set[str], value: str, cap: int, fresh: bool, ps: PartitionState, account: str
) -> bool:
    if len(admitted) >= cap:
        return False
    if fresh:
        admitted.add(value)
        ps.dirty_cores.add(account)
    return True
