"""The worker's state: the aggregation engine, the faust table that makes it durable, the flusher.

The engine holds the live aggregates in memory; the ``state`` table is their durable copy (one
changelog record per bucket, account core, dedup chunk and partition mark). Nothing is written per
event: the flusher snapshots what changed, writes it, and only then acks the input records, so a
committed offset never runs ahead of the state that covers it (SPEC §5).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from schemas.events import Rejected
from streams.app import app, health, settings
from streams.engine import BUCKETS, Engine, Outcome, Snapshot
from streams.intake import BatchConsumer
from streams.market import MarketBoard
from streams.outlet import OutRecord, send_all
from streams.steps import run_async
from streams.topics import dead_letters, interactions
from streams.watchdog import ProgressWatchdog

log = logging.getLogger(__name__)

CHANGELOG_MAX_BYTES = 8 * 1024 * 1024


@dataclass
class _Pending:
    snapshot: Snapshot
    acks: dict[int, int]  # partition -> last offset the snapshot covers
    dead: list[tuple[int, int, bytes | None, bytes, Rejected]]


class Flusher:
    """Writes engine snapshots and dead letters, then acks the input records they cover."""

    def __init__(self, engine: Engine, table: StateTable, max_pending: int) -> None:
        self.engine = engine
        self.table = table
        self.max_pending = max_pending
        self._background: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self._acks: dict[int, int] = {}
        self._pending = 0
        self._dead: list[tuple[int, int, bytes | None, bytes, Rejected]] = []
        # Snapshots whose write failed (broker away): rewritten, oldest first, before newer ones.
        self._backlog: list[_Pending] = []
        # The agent adds to this on every record; the flusher swaps it out and counts it.
        self.outcome = Outcome()
        self.records_total = 0
        self.flushes_total = 0

    def hold(self, partition: int, last_offset: int, count: int) -> None:
        """Records of ``partition`` up to ``last_offset``, to ack once the state holding them
        is written."""
        self._acks[partition] = last_offset
        self._pending += count

    def _count(self, outcome: Outcome) -> None:
        """Fold a flush interval's outcome into the health counters (once per flush)."""
        self._dead.extend(outcome.rejected)
        for etype, n in outcome.applied.items():
            health.events.labels(etype).inc(n)
        for _p, _o, _k, _v, rej in outcome.rejected:
            health.rejected.labels(rej.reason.value).inc()
        health.records.inc(outcome.records)
        self.records_total += outcome.records
        health.duplicates.inc(outcome.duplicates)
        health.late.inc(outcome.late)
        health.replayed.inc(outcome.replayed)
        health.overflow.labels("account").inc(outcome.overflow_accounts)
        health.overflow.labels("campaign").inc(outcome.overflow_campaigns)
        for kind, n in outcome.overflow_labels.items():
            health.overflow.labels(kind).inc(n)

    @property
    def pending(self) -> int:
        return self._pending

    async def relieve(self) -> None:
        """After each batch: past ``max_pending`` unflushed records, flush in the background,
        so the stream keeps flowing while the broker acknowledges; wait for it only when
        four times as many are waiting (the broker is slower than the input)."""
        if self._pending < self.max_pending:
            return
        if self._pending >= 4 * self.max_pending:
            await self.flush()
        elif self._background is None or self._background.done():
            self._background = asyncio.create_task(self.flush())
            self._background.add_done_callback(_log_failure)

    async def flush(self) -> None:
        async with self.lock:
            started = time.monotonic()
            # Expiry first, pausing between partitions; the capture below is one step.
            await run_async(self.engine.evict_steps())
            outcome, self.outcome = self.outcome, Outcome()
            self._count(outcome)
            # The records to ack are exactly those applied before the snapshot starts: taken in
            # the same step as the snapshot's dirty sets and marks (no await in between).
            acks, dead = self._acks, self._dead
            self._acks, self._dead, self._pending = {}, [], 0
            # The stream gets in between slices of encoding.
            snap = await run_async(self.engine.snapshot_steps())
            if not (len(snap) or acks or dead):
                return
            self._backlog.append(_Pending(snap, acks, dead))
            try:
                await self._write_backlog()
            except Exception as exc:  # the broker may be away: keep the backlog, retry next time
                log.warning("flush failed, will retry: %s", exc)
                return
            health.flushes.inc()
            self.flushes_total += 1
            health.flush_seconds.inc(time.monotonic() - started)

    async def _write_backlog(self) -> None:
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        consumer = app.consumer
        assert isinstance(consumer, BatchConsumer)
        topic = interactions.get_topic_name()
        changelog = self.table.changelog_topic.get_topic_name()
        dlq = dead_letters.get_topic_name()
        markets = settings.market_topic
        while self._backlog:
            item = self._backlog[0]
            first: list[OutRecord] = [(changelog, p, key, value, [])
                                      for p, key, value in item.snapshot.first]
            # A dead letter goes to the DLQ partition of its source's number.
            first.extend((dlq, p, dkey, raw, [
                ("reason", rej.reason.value.encode()),
                ("detail", rej.detail.encode()),
                ("source", f"{topic}/{p}/{offset}".encode()),
            ]) for p, offset, dkey, raw, rej in item.dead)
            await send_all(producer, first)
            # Marks only after everything they vouch for is acknowledged by the broker.
            then: list[OutRecord] = [(changelog, p, mkey, mvalue, [])
                                     for p, mkey, mvalue in item.snapshot.marks]
            then.extend((markets, p, mkey, mvalue, [])
                        for p, mkey, mvalue in item.snapshot.markets)
            for p in item.snapshot.offsets:
                then.extend((markets, p, dead_key, None, [])
                            for dead_key in board.expired(p, self._tombstone_floors(p)))
            await send_all(producer, then)
            for p, last in item.acks.items():
                consumer.ack_through(topic, p, last + 1)
            self._backlog.pop(0)

    def _tombstone_floors(self, p: int) -> list[int]:
        """A window's length below the partition's own floors: other workers, whose clocks may
        lag this partition's, still read these totals for their share of voice (each reader
        keeps only the buckets of its own windows)."""
        return [f - BUCKETS for f in self.engine.floors(p)]

    async def forget(self, partitions: set[int]) -> None:
        """A rebalance took ``partitions`` away: their unflushed work belongs to the next owner."""
        async with self.lock:
            for item in self._backlog:
                item.snapshot.first = [r for r in item.snapshot.first if r[0] not in partitions]
                item.snapshot.marks = [r for r in item.snapshot.marks if r[0] not in partitions]
                item.snapshot.markets = [r for r in item.snapshot.markets
                                         if r[0] not in partitions]
                item.acks = {p: o for p, o in item.acks.items() if p not in partitions}
                item.dead = [d for d in item.dead if d[0] not in partitions]
            self._acks = {p: o for p, o in self._acks.items() if p not in partitions}
            self._dead = [d for d in self._dead if d[0] not in partitions]
            consumer = app.consumer
            if isinstance(consumer, BatchConsumer):
                consumer.forget_acks(interactions.get_topic_name(), partitions)
            for p in partitions:
                self.engine.drop(p)


class StateTable(faust.Table):
    """The durable copy of the engine; rebuilds the engine's partitions after recovery."""

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        lost = {tp.partition for tp in revoked if tp.topic == interactions.get_topic_name()}
        if lost:
            await flusher.forget(lost)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        owned = {tp.partition for tp in active_tps}
        for p in owned - engine.partitions.keys():
            engine.restore(p, _items_of(self.data, p))
        for p in list(engine.partitions):
            if p not in owned:
                engine.drop(p)
        health.partitions.set(len(owned))


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background flush failed", exc_info=task.exception())


def _items_of(data: Any, partition: int) -> Iterable[tuple[bytes, bytes]]:
    prefix = f"{partition}:".encode()
    return [(k, v) for k, v in data.items() if k.startswith(prefix) and v is not None]


engine = Engine(settings)
board = MarketBoard(settings, settings.market_topic)
state = StateTable(
    app,
    name="state",
    default=None,
    key_type=bytes,
    value_type=bytes,
    beacon=app.tables.beacon,
    partitions=settings.topic_partitions,
    help="socialpulse aggregates: buckets, account cores, dedup chunks, partition marks.",
    extra_topic_configs={"max.message.bytes": str(CHANGELOG_MAX_BYTES)},
)
app.tables.add(state)
flusher = Flusher(engine, state, settings.flush_max_events)
watchdog = ProgressWatchdog(settings.stall_warn_seconds, settings.stall_exit_seconds)
app.before_stop.append(flusher.flush)
