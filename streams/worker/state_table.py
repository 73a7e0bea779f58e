"""The ``state`` table: the engine's durable copy in faust, and the rebalance hooks around it.

One changelog record per bucket, account core, dedup chunk and partition mark (keys in
``streams.core.keys``); the flusher writes them itself (``streams.worker.flusher``), so the table is
never written through faust's per-key API. What faust gives: the changelog topic, its recovery
into ``data`` at assignment, standby replicas and the rebalance callbacks, used here to rebuild
the engine's partitions once recovered and to drop the revoked ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import TP

from streams.core.aggregates import record_fingerprint
from streams.core.engine import Engine
from streams.core.keys import partition_prefix
from streams.core.manifest import StateMismatch, check_offsets
from streams.export.health import Health
from streams.settings import EXIT_BAD_SETTINGS

log = logging.getLogger(__name__)

# The largest state record the changelog accepts (its topic's max.message.bytes).
CHANGELOG_MAX_BYTES = 8 * 1024 * 1024
# Its segments (topic segment.bytes): the log cleaner compacts closed segments only.
CHANGELOG_SEGMENT_BYTES = 32 * 1024 * 1024

RevokedHook = Callable[[set[int]], Awaitable[None]]
# The recovery checks of the input's offsets give up after this (and the worker goes on).
CHECK_TIMEOUT_S = 20.0


class StateTable(faust.Table):
    """The durable copy of the engine; rebuilds the engine's partitions after recovery."""

    def __init__(
        self, *args: Any, engine: Engine, health: Health, input_topic: str,
        input_partitions: int, kafka_client_kwargs: Callable[[], dict[str, Any]],
        repartition_topic: str = "", **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.engine = engine
        self.health = health
        self.input_topic = input_topic
        self.repartition_topic = repartition_topic
        self.input_partitions = input_partitions
        # Connection arguments (settings.kafka_client_kwargs), for the recovery checks.
        self.kafka_client_kwargs = kafka_client_kwargs
        # Called at every assignment with the input partitions it took away (maybe none),
        # before faust's own handling.
        self.on_revoked: list[RevokedHook] = []
        # Called with (topic, partition -> offset) for the group's committed offsets that the
        # recovery check read from the broker.
        self.on_committed: list[Callable[[str, dict[int, int]], None]] = []

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        self._check_partition_counts()
        lost = {tp.partition for tp in revoked if tp.topic == self.input_topic}
        for hook in self.on_revoked:
            await hook(lost)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        engine = self.engine
        owned = {tp.partition for tp in active_tps}
        fresh = owned - engine.partitions.keys()
        for p in fresh:
            try:
                engine.restore(p, _items_of(self.data, p))
            except StateMismatch as exc:
                _refuse(str(exc))
        if fresh:
            await self._check_offsets(fresh)
        for p in list(engine.partitions):
            if p not in owned:
                engine.drop(p)
        self.health.partitions.set(len(owned))


    async def _check_offsets(self, partitions: set[int]) -> None:
        """Each recovered partition's state fits its input and the group's committed offset.

        Asked with clients of its own, not the worker's consumer: that one is in the middle of
        the rebalance, and its thread does not answer a committed-offsets request before it
        ends (the worker hung there)."""
        marks = {p: self.engine.partitions[p].mark for p in sorted(partitions)
                 if p in self.engine.partitions}
        # The repartition topic's records carry no fingerprint worth keeping: its end is checked.
        sources = [(self.input_topic, {p: (m.flushed, m.fingerprint) for p, m in marks.items()})]
        if self.repartition_topic:
            sources.append((self.repartition_topic,
                            {p: (m.flushed_rekeyed, -1) for p, m in marks.items()}))
        for topic, topic_marks in sources:
            try:
                facts = await asyncio.wait_for(
                    _input_facts(self.kafka_client_kwargs, self.app.conf.id, topic, topic_marks),
                    CHECK_TIMEOUT_S)
            except Exception as exc:  # broker away or slow: the next assignment checks again
                log.warning("could not check the offsets of %s against the state: %r",
                            topic, exc)
                return
            for hook in self.on_committed:
                hook(topic, facts.committed)
            for p, (flushed, fingerprint) in topic_marks.items():
                end = facts.ends.get(p)
                if end is None:
                    continue
                # A state without marks for the repartition topic beside its committed
                # offsets is a state that never needed it: only the input's tells a lost one.
                committed = facts.committed.get(p) if topic == self.input_topic else None
                try:
                    check_offsets(topic, p, self.app.conf.id, flushed, committed, end,
                                  fingerprint, facts.found.get(p))
                except StateMismatch as exc:
                    _refuse(str(exc))

    def _check_partition_counts(self) -> None:
        """The changelog is co-partitioned with the input, and both have the count the state
        was built for: a topic grown (or recreated) under a running group moves accounts."""
        consumer = self.app.consumer
        topics = [self.input_topic, self.changelog_topic.get_topic_name()]
        if self.repartition_topic:
            topics.append(self.repartition_topic)
        for topic in topics:
            n = consumer.topic_partitions(topic)
            if n is not None and n != self.input_partitions:
                _refuse(f"topic {topic} has {n} partitions but SOCIALPULSE_TOPIC_PARTITIONS="
                        f"{self.input_partitions} (the state's): restore the count, or replay "
                        "into a new SOCIALPULSE_APP_ID (README: growing the input topic)")


@dataclass
class _InputFacts:
    ends: dict[int, int]  # log end offset per partition
    committed: dict[int, int]  # the group's committed offset (absent: none)
    found: dict[int, int]  # fingerprint of the record now at each mark's offset (absent: gone)


async def _input_facts(
    kafka_client_kwargs: Callable[[], dict[str, Any]], group: str, topic: str,
    marks: dict[int, tuple[int, int]],
) -> _InputFacts:
    """What the input and the group hold now for the partitions of ``marks`` (partition ->
    (flushed offset, fingerprint))."""
    admin = AIOKafkaAdminClient(**kafka_client_kwargs())
    await admin.start()
    try:
        answer = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    committed = {tp.partition: meta.offset for tp, meta in answer.items()
                 if tp.topic == topic and meta.offset >= 0}
    reader = AIOKafkaConsumer(**kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        parts = {p: TopicPartition(topic, p) for p in marks}
        ends = {tp.partition: off for tp, off in (await reader.end_offsets(list(parts.values()))
                                                  ).items()}
        wanted = {p: flushed for p, (flushed, fingerprint) in marks.items()
                  if flushed >= 0 and fingerprint >= 0 and ends.get(p, 0) > flushed}
        found: dict[int, int] = {}
        if wanted:
            reader.assign([parts[p] for p in wanted])
            for p, offset in wanted.items():
                reader.seek(parts[p], offset)
            while len(found) < len(wanted):
                batch = await reader.getmany(timeout_ms=1000, max_records=len(wanted))
                for tp, records in batch.items():
                    for r in records:
                        if r.offset == wanted[tp.partition]:
                            found[tp.partition] = record_fingerprint(r.value)
                    reader.pause(tp)  # one record of each is all it takes
                if not batch and all(parts[p] in reader.paused() for p in wanted):
                    break
    finally:
        await reader.stop()
    return _InputFacts(ends, committed, found)


def _refuse(line: str) -> None:
    """State or topics this worker must not read: one line, and exit before touching them."""
    log.critical("refusing to run: %s", line)
    logging.shutdown()
    os._exit(EXIT_BAD_SETTINGS)


def _items_of(data: Any, partition: int) -> Iterable[tuple[bytes, bytes]]:
    prefix = partition_prefix(partition)
    return [(k, v) for k, v in data.items() if k.startswith(prefix) and v is not None]
