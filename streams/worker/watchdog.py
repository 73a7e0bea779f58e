"""Progress watchdog: a worker that owns lagging partitions and makes no progress says so.

Pure bookkeeping, no Kafka: the worker's timer (``agents/watch_progress.py``) hands it, every few
seconds, what it knows per owned partition of the topics it reads (the input and the repartition
topic: the broker's end offset, the next offset the engine would apply, the committed offset),
keyed by anything hashable and orderable (the worker uses ``(topic, partition)``), and the
monotonic time; the watchdog answers how long the
worker has been stalled and what to do about it.

Progress means both halves of the pipeline moving: records *applied* and offsets *committed*. A
worker whose fetcher died (https://github.com/faust-streaming/faust/issues/629: partitions never
fetched after a rebalance) stops applying; a worker that still reads but can no longer commit (a
wedged flush, a fenced producer) stops committing. Either way the stall clock runs from the last
moment that half moved while it had something to do. A partition with nothing left to apply (or to
commit) is not stalled, so an idle worker never fires, and a slow one (a CPU hog beside it) still
moves and never fires either.

While faust recovers tables from their changelogs, or a rebalance is under way, the worker is
busy with something else on purpose: the caller says so with ``paused=True`` and the input's stall
clock starts again from that moment, however long the recovery took. The recovery itself must
move, though: the caller hands, per changelog partition being recovered, the changes still to be
read, and a partition whose count stays above zero is stalled just as an input partition is. faust
can wait forever for a changelog partition it never fetches after a rebalance ("have offset -1",
https://github.com/faust-streaming/faust/issues/155, https://github.com/faust-streaming/faust/issues/21);
a new process recovers it.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

# What stopped, as the log line and GET /ready name it: the input's two halves, or a recovery.
APPLYING, COMMITTING, RECOVERY = "applying", "committing", "recovery"

# The exit code of a worker that stopped itself because it was stalled: its supervisor
# (Kubernetes, systemd, ``socialpulse up``) restarts it.
EXIT_STALLED = 3


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """One owned input partition as the worker sees it (offsets are "next offset" positions:
    ``end`` is the broker's log end, ``applied`` the first offset not yet applied, ``committed``
    the group's committed offset; None where not known yet)."""

    end: int | None
    applied: int | None
    committed: int | None


class Verdict(enum.Enum):
    OK = "ok"
    STALLED = "stalled"  # past the warning limit: log once, metric, readiness fails
    EXIT = "exit"  # past the exit limit: the supervisor must restart the worker


@dataclass(frozen=True, slots=True)
class Reading:
    verdict: Verdict
    stalled_seconds: float
    # Partitions with work left that did not move, for the log line.
    stuck: tuple[Any, ...] = ()
    half: str = ""  # APPLYING, COMMITTING or RECOVERY: what stopped


@dataclass(slots=True)
class _RecoveryTrack:
    """A changelog partition being recovered: the changes left at the last look and since when
    that count has not moved."""

    remaining: int
    since: float


@dataclass(slots=True)
class _Track:
    """What the watchdog remembers of one partition: its offsets and since when each half has
    had work left without moving."""

    applied: int
    committed: int
    apply_since: float
    commit_since: float


class ProgressWatchdog:
    """Tracks apply and commit progress of each owned partition across ``observe`` calls.

    Each partition is watched on its own: one partition that is never fetched while the others
    flow is a stall too (the shape of https://github.com/faust-streaming/faust/issues/629).
    """

    def __init__(self, warn_after_s: float, exit_after_s: float) -> None:
        if not 0 < warn_after_s <= exit_after_s:
            raise ValueError("need 0 < warn_after_s <= exit_after_s")
        self.warn_after_s = warn_after_s
        self.exit_after_s = exit_after_s
        self._tracks: dict[Hashable, _Track] = {}
        self._recovery: dict[Hashable, _RecoveryTrack] = {}
        self.latest = Reading(Verdict.OK, 0.0)  # the newest reading (readiness probes)

    def observe(
        self, now: float, partitions: Mapping[Any, PartitionProgress], *, paused: bool = False,
        recovering: Mapping[Any, int] | None = None,
    ) -> Reading:
        """``now``: monotonic seconds; ``recovering``: during a recovery, the changes left to
        read per changelog partition. Returns how long the worker has been stalled."""
        tracks = self._tracks
        for p in list(tracks):
            if p not in partitions:  # revoked: its offsets mean nothing to the next assignment
                del tracks[p]
        apply_for: dict[Any, float] = {}
        commit_for: dict[Any, float] = {}
        for p, pp in partitions.items():
            # Next-offset positions: nothing applied or committed yet is offset 0 (an empty
            # partition, end 0, has no work).
            applied = 0 if pp.applied is None else pp.applied
            committed = 0 if pp.committed is None else pp.committed
            t = tracks.get(p)
            if t is None:
                t = tracks[p] = _Track(applied, committed, now, now)
            # Records below the committed offset are done even if this worker never read them
            # (a takeover starts there).
            apply_work = pp.end is not None and max(applied, committed) < pp.end
            commit_work = pp.end is not None and committed < min(pp.end, applied)
            if paused or applied > t.applied or not apply_work:
                t.apply_since = now
            if paused or committed > t.committed or not commit_work:
                t.commit_since = now
            t.applied = max(applied, t.applied)
            t.committed = max(committed, t.committed)
            if apply_work:
                apply_for[p] = now - t.apply_since
            if commit_work:
                commit_for[p] = now - t.commit_since
        recover_for = self._observe_recovery(now, recovering or {})
        halves = ((APPLYING, apply_for), (COMMITTING, commit_for), (RECOVERY, recover_for))
        worst = {half: max(waits.values(), default=0.0) for half, waits in halves}
        stalled = max(worst.values())
        if stalled < self.warn_after_s:
            self.latest = Reading(Verdict.OK, stalled)
            return self.latest
        half, waits = max(halves, key=lambda h: worst[h[0]])
        stuck = tuple(sorted(p for p, w in waits.items() if w >= self.warn_after_s))
        verdict = Verdict.EXIT if stalled >= self.exit_after_s else Verdict.STALLED
        self.latest = Reading(verdict, stalled, stuck, half)
        return self.latest

    def _observe_recovery(self, now: float, recovering: Mapping[Any, int]) -> dict[Any, float]:
        """How long each changelog partition with changes left has not moved."""
        tracks = self._recovery
        for p in list(tracks):
            if p not in recovering:  # recovered, revoked, or the recovery is over
                del tracks[p]
        waits: dict[Any, float] = {}
        for p, remaining in recovering.items():
            t = tracks.get(p)
            if t is None or remaining != t.remaining or remaining <= 0:
                # A new count (read on, or a restarted recovery that starts over) is movement.
                t = tracks[p] = _RecoveryTrack(remaining, now)
            if remaining > 0:
                waits[p] = now - t.since
        return waits
