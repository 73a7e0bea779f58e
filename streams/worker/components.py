"""The worker's components, built once and wired together: the engine and its dedup store, its
state table, the flusher and its adapters to Kafka, the market board, the repartition purger and
the progress watchdog.

Agents, timers and HTTP handlers import their collaborators from here; the classes themselves
take everything they use as arguments (so unit tests build them with fakes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.core.engine import Engine
from streams.settings import STATE_TABLE
from streams.store.rocks import RocksDatabase
from streams.worker.app import app, health, settings
from streams.worker.flusher import Flusher, FlushTopics
from streams.worker.intake import BatchConsumer
from streams.worker.market_board import MarketBoard
from streams.worker.outlet import OutRecord, send_all
from streams.worker.purger import RepartitionPurger
from streams.worker.state_table import CHANGELOG_MAX_BYTES, CHANGELOG_SEGMENT_BYTES, StateTable
from streams.worker.topics import dead_letters, interactions, market_mentions, repartitioned
from streams.worker.watchdog import ProgressWatchdog


class ProducerSink:
    """Produces through the app's aiokafka producer, one batch per topic partition."""

    async def send(self, records: Sequence[OutRecord]) -> None:
        # faust's Producer wraps the aiokafka producer whose batch builder send_all appends to.
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        await send_all(producer, records)


class ConsumerAcks:
    """The input topic's acks on the app's consumer (which exists once the worker started)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def _consumer(self) -> BatchConsumer:
        consumer = app.consumer
        assert isinstance(consumer, BatchConsumer)
        return consumer

    def ack_through(self, partition: int, next_offset: int) -> None:
        self._consumer().ack_through(self.topic, partition, next_offset)

    def forget(self, partitions: set[int]) -> None:
        consumer = app.consumer
        if isinstance(consumer, BatchConsumer):
            consumer.forget_acks(self.topic, partitions)


dedup_store = RocksDatabase(settings.dedup_store_path)
engine = Engine(settings, run_store=dedup_store.run_store)
board = MarketBoard(settings, market_mentions.get_topic_name())
state = StateTable(
    app,
    name=STATE_TABLE,
    default=None,
    key_type=bytes,
    value_type=bytes,
    beacon=app.tables.beacon,
    partitions=settings.topic_partitions,
    help="socialpulse aggregates: buckets, account cores, dedup chunks, partition marks.",
    # Small segments and an eager cleaner: every flush rewrites the buckets it touched, and only
    # closed segments are compacted, so with the default 1 GiB segments a recovery re-read
    # about one changelog record per event applied.
    extra_topic_configs={"max.message.bytes": str(CHANGELOG_MAX_BYTES),
                         "segment.bytes": str(CHANGELOG_SEGMENT_BYTES),
                         "min.cleanable.dirty.ratio": "0.1"},
    engine=engine,
    health=health,
    input_topic=interactions.get_topic_name(),
    repartition_topic=repartitioned.get_topic_name(),
    input_partitions=settings.topic_partitions,
    kafka_client_kwargs=settings.kafka_client_kwargs,
)
app.tables.add(state)
flusher = Flusher(
    engine,
    ProducerSink(),
    ConsumerAcks(interactions.get_topic_name()),
    board,
    FlushTopics(
        input=interactions.get_topic_name(),
        changelog=state.changelog_topic.get_topic_name(),
        dead_letters=dead_letters.get_topic_name(),
        markets=market_mentions.get_topic_name(),
        repartition=repartitioned.get_topic_name(),
    ),
    health,
    settings.flush_max_events,
    settings.dead_letter_max_bytes,
    rekeyed_acks=ConsumerAcks(repartitioned.get_topic_name()),
)
state.on_revoked.append(flusher.forget)


def _note_committed(topic: str, offsets: dict[int, int]) -> None:
    consumer = app.consumer
    if isinstance(consumer, BatchConsumer):
        consumer.note_committed(topic, offsets)


state.on_committed.append(_note_committed)
purger = RepartitionPurger(repartitioned.get_topic_name(), settings.kafka_client_kwargs)


async def _forget_purges(partitions: set[int]) -> None:
    purger.forget(partitions)


state.on_revoked.append(_forget_purges)


async def _fence_flushes(sender: Any, /, *revoked: Any, signal: Any, **kwargs: Any) -> None:
    await flusher.fence()


app.on_partitions_revoked.connect(_fence_flushes)

watchdog = ProgressWatchdog(settings.stall_warn_seconds, settings.stall_exit_seconds)
app.before_stop.append(flusher.flush)
