"""The durability protocol: write the state, then the marks, then ack the input (SPEC §5).

Nothing is written per event. The flusher takes a snapshot of what the engine changed, has the
broker acknowledge its state records and dead letters, then its partition marks and market
totals, and only then acks the input records the snapshot covers, so that a committed offset
never runs ahead of the state that covers it. A write that fails (the broker away) keeps the
snapshot in a backlog, rewritten oldest first before anything newer, and acks nothing.

Input records whose account lives in another partition are forwarded to the repartition topic
with the state records: acked only once the broker has them, like everything else (a crash
before the ack forwards them again, and their home counts them once by ``(account, event_id)``).

Its collaborators are passed in (``streams.worker.components`` wires the real ones; the unit
tests pass fakes): the engine, a record sink, the acks of the input and of the repartition topic,
the market board's tombstones, the topic names and the health counters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streams.core.changelog import Snapshot
from streams.core.engine import Engine
from streams.core.outcome import DeadLetter, Forward, Outcome
from streams.core.steps import run_async
from streams.core.windows import BUCKETS_PER_WINDOW
from streams.export.health import Health
from streams.worker.outlet import OutRecord

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """Produces records and returns once the broker acknowledged every one (or raises)."""

    async def send(self, records: Sequence[OutRecord]) -> None: ...


class InputAcks(Protocol):
    """The input partitions' offsets to commit (faust's commit loop commits them)."""

    def ack_through(self, partition: int, next_offset: int) -> None: ...

    def forget(self, partitions: set[int]) -> None: ...


class MarketTombstones(Protocol):
    """The market board's published keys of a partition that no window shows any more."""

    def expired(self, partition: int, floors: list[int]) -> list[bytes]: ...


@dataclass(frozen=True)
class FlushTopics:
    """Where a flush writes, and the input topic its dead letters name as their source."""

    input: str
    changelog: str
    dead_letters: str
    markets: str
    repartition: str = ""


@dataclass
class _PendingFlush:
    """A snapshot on its way to the broker, with the acks and dead letters that go with it."""

    snapshot: Snapshot
    acks: dict[int, int]  # partition -> last input offset the snapshot covers
    dead: list[DeadLetter]
    records: int  # input records it covers (unacked until it is written)
    state_written: bool = False  # its state and dead letters are acknowledged; marks are next
    rekeyed_acks: dict[int, int] = field(default_factory=dict)  # the same, repartition topic
    forwards: list[Forward] = field(default_factory=list)

    def absorb(self, newer: _PendingFlush) -> None:
        self.snapshot.absorb(newer.snapshot)
        for mine, theirs in ((self.acks, newer.acks), (self.rekeyed_acks, newer.rekeyed_acks)):
            for p, last in theirs.items():
                mine[p] = max(last, mine.get(p, -1))
        self.dead.extend(newer.dead)
        self.forwards.extend(newer.forwards)
        self.records += newer.records

    def without(self, partitions: set[int]) -> None:
        self.snapshot.without(partitions)
        self.acks = {p: o for p, o in self.acks.items() if p not in partitions}
        self.rekeyed_acks = {p: o for p, o in self.rekeyed_acks.items() if p not in partitions}
        self.dead = [d for d in self.dead if d.partition not in partitions]
        self.forwards = [f for f in self.forwards if f.source_partition not in partitions]


class Flusher:
    """Writes engine snapshots and dead letters, then acks the input records they cover."""

    def __init__(
        self, engine: Engine, sink: RecordSink, acks: InputAcks, tombstones: MarketTombstones,
        topics: FlushTopics, health: Health, max_pending: int, dead_letter_max_bytes: int,
        rekeyed_acks: InputAcks | None = None,
    ) -> None:
        self.engine, self.health, self.max_pending = engine, health, max_pending
        # Where the records go, and what is told once they are there.
        self.sink, self.topics, self.acks, self.tombstones = sink, topics, acks, tombstones
        self.rekeyed_acks = rekeyed_acks
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self._background: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self._acks: dict[int, int] = {}
        self._rekeyed_acks: dict[int, int] = {}
        self._pending = 0
        self._dead: list[DeadLetter] = []
        self._forwards: list[Forward] = []
        # Snapshots whose write failed (broker away): rewritten, oldest first, before newer ones.
        # At most two: one half written (its marks are next), and one that absorbs the newer.
        self._backlog: list[_PendingFlush] = []
        # The agent adds to this on every batch; the flusher swaps it out and counts it.
        self.outcome = Outcome()
        self.records_total = 0
        # Records sent to the dead-letter topic by reason, since start (``/status``).
        self.rejected_total: Counter[str] = Counter()
        self.flushes_total = 0
        # Between a rebalance's revocation and the new assignment nothing is written: a revoked
        # partition's next owner may already be writing its dead letters and state.
        self.fenced = False

    def ack_when_durable(
        self, partition: int, last_offset: int, count: int, rekeyed: bool = False
    ) -> None:
        """``count`` records of ``partition`` (of the input, or ``rekeyed``: of the repartition
        topic) up to ``last_offset`` were applied: ack them once the state holding them (or
        the forwards of those that belong elsewhere) is written."""
        (self._rekeyed_acks if rekeyed else self._acks)[partition] = last_offset
        self._pending += count

    @property
    def pending(self) -> int:
        """Records applied and not yet acked: since the last flush began, plus those of the
        snapshots waiting in the backlog."""
        return self._pending + sum(item.records for item in self._backlog)

    @property
    def backlog(self) -> int:
        """Snapshots whose write failed, waiting to be written again."""
        return len(self._backlog)

    async def flush_if_behind(self) -> None:
        """After each batch: past ``max_pending`` unflushed records, flush in the background,
        so the stream keeps flowing while the broker acknowledges; wait for it only when
        four times as many are waiting (the broker is slower than the input)."""
        pending = self.pending
        if pending < self.max_pending:
            return
        if pending >= 4 * self.max_pending:
            await self.flush()
        elif self._background is None or self._background.done():
            self._background = asyncio.create_task(self.flush())
            self._background.add_done_callback(_log_failure)

    async def flush(self) -> None:
        async with self.lock:
            if self.fenced:
                return  # the records wait for the assignment (or their next owner)
            started = time.monotonic()
            # Expiry first, pausing between partitions; the capture below is one step.
            await run_async(self.engine.evict_steps())
            outcome, self.outcome = self.outcome, Outcome()
            self._count(outcome)
            # The records to ack are exactly those applied before the snapshot starts: taken in
            # the same step as the snapshot's dirty sets and marks (no await in between).
            acks, dead, pending = self._acks, self._dead, self._pending
            rekeyed_acks, forwards = self._rekeyed_acks, self._forwards
            self._acks, self._dead, self._pending = {}, [], 0
            self._rekeyed_acks, self._forwards = {}, []
            try:
                # The stream gets in between slices of encoding.
                snap = await run_async(self.engine.snapshot_steps())
            except Exception:
                # The engine gave its capture back; these records wait for the next flush.
                for mine, taken in ((self._acks, acks), (self._rekeyed_acks, rekeyed_acks)):
                    for p, last in taken.items():
                        mine[p] = max(last, mine.get(p, -1))
                self._dead[:0] = dead
                self._forwards[:0] = forwards
                self._pending += pending
                self.health.flush_failures.labels("encode").inc()
                log.exception("flush failed: the snapshot could not be encoded; nothing acked")
                return
            if not (len(snap) or acks or rekeyed_acks or dead or self._backlog):
                return
            if len(snap) or acks or rekeyed_acks or dead:
                item = _PendingFlush(snap, acks, dead, pending, rekeyed_acks=rekeyed_acks,
                                     forwards=forwards)
                waiting = self._backlog[-1] if self._backlog else None
                if waiting is not None and not waiting.state_written:
                    waiting.absorb(item)
                else:
                    self._backlog.append(item)
            try:
                await self._write_backlog()
            except Exception as exc:  # the broker may be away: keep the backlog, retry next time
                self.health.flush_failures.labels("write").inc()
                log.warning("flush failed, will retry: %s", exc)
                return
            self.health.flushes.inc()
            self.flushes_total += 1
            self.health.flush_seconds.inc(time.monotonic() - started)

    async def _write_backlog(self) -> None:
        t = self.topics
        while self._backlog:
            item = self._backlog[0]
            if not item.state_written:
                state = [OutRecord(t.changelog, r.partition, r.key, r.value, [])
                         for r in item.snapshot.state]
                state.extend(self._dead_letter(d) for d in item.dead)
                state.extend(self._forward(f) for f in item.forwards)
                await self.sink.send(state)
                item.state_written = True
            # Marks only after everything they vouch for is acknowledged by the broker.
            then = [OutRecord(t.changelog, r.partition, r.key, r.value, [])
                    for r in item.snapshot.marks]
            then.extend(OutRecord(t.markets, r.partition, r.key, r.value, [])
                        for r in item.snapshot.markets)
            for p in item.snapshot.offsets:
                then.extend(OutRecord(t.markets, p, key, None, [])
                            for key in self.tombstones.expired(p, self._tombstone_floors(p)))
            await self.sink.send(then)
            for p, last in item.acks.items():
                self.acks.ack_through(p, last + 1)
            if self.rekeyed_acks is not None:
                for p, last in item.rekeyed_acks.items():
                    self.rekeyed_acks.ack_through(p, last + 1)
            self._backlog.pop(0)

    def _forward(self, f: Forward) -> OutRecord:
        """The record for the repartition topic: the original bytes, keyed by the account, in
        the partition of the account's home; the source is named in a header."""
        source = f"{self.topics.input}/{f.source_partition}/{f.source_offset}".encode()
        return OutRecord(self.topics.repartition, f.partition, f.key, f.value,
                         [("source", source)])

    def _dead_letter(self, d: DeadLetter) -> OutRecord:
        """The record for the dead-letter topic, in the DLQ partition of its source's number.

        Copied byte for byte up to ``dead_letter_max_bytes``; beyond, truncated and said so in
        its headers: a record its producer compressed can be far larger uncompressed than the
        dead-letter topic accepts, and one record must never stop the writes of all the others.
        """
        headers = [
            ("reason", d.rejected.reason.value.encode()),
            ("detail", d.rejected.detail.encode()),
            ("source", f"{self.topics.repartition if d.rekeyed else self.topics.input}/"
                       f"{d.partition}/{d.offset}".encode()),
        ]
        value = d.value
        if len(value) > self.dead_letter_max_bytes:
            headers += [("truncated", b"true"), ("original_size", str(len(value)).encode())]
            value = value[:self.dead_letter_max_bytes]
        return OutRecord(self.topics.dead_letters, d.partition, d.key, value, headers)

    def _tombstone_floors(self, p: int) -> list[int]:
        """A window's length below the partition's own floors: other workers, whose clocks may
        lag this partition's, still read these totals for their share of voice (each reader
        keeps only the buckets of its own windows)."""
        return [f - BUCKETS_PER_WINDOW for f in self.engine.floors(p)]

    def _count(self, outcome: Outcome) -> None:
        """Fold a flush interval's outcome into the health counters (once per flush)."""
        h = self.health
        self._dead.extend(outcome.rejected)
        self._forwards.extend(outcome.forwards)
        h.repartitioned.inc(len(outcome.forwards))
        for etype, n in outcome.applied.items():
            h.events.labels(etype).inc(n)
        rejected = Counter(dead.rejected.reason.value for dead in outcome.rejected)
        for reason, n in rejected.items():
            h.rejected.labels(reason).inc(n)
        self.rejected_total.update(rejected)
        h.records.inc(outcome.records)
        self.records_total += outcome.records
        h.duplicates.inc(outcome.duplicates)
        h.late.inc(outcome.late)
        h.replayed.inc(outcome.replayed)
        h.overflow.labels("account").inc(outcome.overflow_accounts)
        h.overflow.labels("campaign").inc(outcome.overflow_campaigns)
        for kind, n in outcome.overflow_labels.items():
            h.overflow.labels(kind).inc(n)

    async def fence(self) -> None:
        """A rebalance began (faust's ``on_partitions_revoked``, before this worker rejoins the
        group): the write under way finishes first, and none starts until ``forget`` at the new
        assignment, so no partition's old and new owner write its records at once."""
        self.fenced = True
        async with self.lock:
            pass

    async def forget(self, partitions: set[int]) -> None:
        """The new assignment: ``partitions`` (maybe none) were taken away, and their unflushed
        work belongs to their next owner; writes resume for the rest."""
        async with self.lock:
            self.fenced = False
            for item in self._backlog:
                item.without(partitions)
            self._acks = {p: o for p, o in self._acks.items() if p not in partitions}
            self._rekeyed_acks = {p: o for p, o in self._rekeyed_acks.items()
                                  if p not in partitions}
            self._dead = [d for d in self._dead if d.partition not in partitions]
            self._forwards = [f for f in self._forwards if f.source_partition not in partitions]
            # Not yet counted either: the next owner dead-letters (or forwards) them again.
            self.outcome.rejected = [d for d in self.outcome.rejected
                                     if d.partition not in partitions]
            self.outcome.forwards = [f for f in self.outcome.forwards
                                     if f.source_partition not in partitions]
            self.acks.forget(partitions)
            if self.rekeyed_acks is not None:
                self.rekeyed_acks.forget(partitions)
            for p in partitions:
                self.engine.drop(p)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background flush failed", exc_info=task.exception())

