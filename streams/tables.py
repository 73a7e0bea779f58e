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
from faust.types import TP, EventT

from schemas.events import Rejected
from streams.app import app, health, settings
from streams.engine import Engine, Outcome, Snapshot
from streams.market import MarketBoard
from streams.steps import run_async
from streams.topics import dead_letters, interactions

log = logging.getLogger(__name__)

CHANGELOG_MAX_BYTES = 8 * 1024 * 1024


@dataclass
class _Pending:
    snapshot: Snapshot
    events: list[EventT]
    dead: list[tuple[int, int, bytes | None, bytes, Rejected]]


class Flusher:
    """Writes engine snapshots and dead letters, then acks the input records they cover."""

    def __init__(self, engine: Engine, table: StateTable) -> None:
        self.engine = engine
        self.table = table
        self.lock = asyncio.Lock()
        self._events: list[EventT] = []
        self._dead: list[tuple[int, int, bytes | None, bytes, Rejected]] = []
        # Snapshots whose write failed (broker away): rewritten, oldest first, before newer ones.
        self._backlog: list[_Pending] = []
        # The agent adds to this on every record; the flusher swaps it out and counts it.
        self.outcome = Outcome()
        self.records_total = 0
        self.flushes_total = 0

    def hold(self, event: EventT) -> None:
        """An input record that may be acked once the state holding it is written."""
        self._events.append(event)

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
        return len(self._events)

    async def flush(self) -> None:
        async with self.lock:
            started = time.monotonic()
            outcome, self.outcome = self.outcome, Outcome()
            self._count(outcome)
            # The records to ack are exactly those applied before the snapshot starts: taken in
            # the same step as the snapshot's dirty sets and marks (no await in between).
            events, dead = self._events, self._dead
            self._events, self._dead = [], []
            # The stream gets in between slices of encoding.
            snap = await run_async(self.engine.snapshot_steps())
            if not (len(snap) or events or dead):
                return
            self._backlog.append(_Pending(snap, events, dead))
            try:
                await self._write_backlog()
            except Exception as exc:  # the broker may be away: keep the backlog, retry next time
                log.warning("flush failed, will retry: %s", exc)
                return
            health.flushes.inc()
            self.flushes_total += 1
            health.flush_seconds.inc(time.monotonic() - started)

    async def _write_backlog(self) -> None:
        producer = app.producer
        changelog = self.table.changelog_topic.get_topic_name()
        dlq = dead_letters.get_topic_name()
        while self._backlog:
            item = self._backlog[0]
            futs: list[Any] = []
            for p, key, value in item.snapshot.first:
                futs.append(await producer.send(changelog, key, value, p, None, None))
            for p, offset, dkey, raw, rej in item.dead:
                headers = [
                    ("reason", rej.reason.value.encode()),
                    ("detail", rej.detail.encode()),
                    ("source", f"{interactions.get_topic_name()}/{p}/{offset}".encode()),
                ]
                futs.append(await producer.send(dlq, dkey, raw, None, None, headers))
            await asyncio.gather(*futs)
            # Marks only after everything they vouch for is acknowledged by the broker.
            futs = [await producer.send(changelog, mkey, mvalue, p, None, None)
                    for p, mkey, mvalue in item.snapshot.marks]
            markets = settings.market_topic
            for p, mkey, mvalue in item.snapshot.markets:
                futs.append(await producer.send(markets, mkey, mvalue, p, None, None))
            for p in item.snapshot.offsets:
                for dead_key in board.expired(p, self.engine.floors(p)):
                    futs.append(await producer.send(markets, dead_key, None, p, None, None))
            await asyncio.gather(*futs)
            for event in item.events:
                event.ack()
            self._backlog.pop(0)

    async def forget(self, partitions: set[int]) -> None:
        """A rebalance took ``partitions`` away: their unflushed work belongs to the next owner."""
        async with self.lock:
            for item in self._backlog:
                item.snapshot.first = [r for r in item.snapshot.first if r[0] not in partitions]
                item.snapshot.marks = [r for r in item.snapshot.marks if r[0] not in partitions]
                item.snapshot.markets = [r for r in item.snapshot.markets
                                         if r[0] not in partitions]
                item.events = [e for e in item.events if e.message.partition not in partitions]
                item.dead = [d for d in item.dead if d[0] not in partitions]
            self._events = [e for e in self._events if e.message.partition not in partitions]
            self._dead = [d for d in self._dead if d[0] not in partitions]
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
flusher = Flusher(engine, state)
app.before_stop.append(flusher.flush)
