"""Batch intake: the records of an input topic reach their agent one fetched batch at a time.

faust hands every record to its stream through the conductor, a channel queue and the stream
iterator, and its fetcher wraps each hand-over in ``wait_first`` (two tasks and an
``asyncio.wait``). Measured with py-spy under ``scripts/bench --profile``, that plumbing was most
of a socialpulse worker's CPU, several times the KPI arithmetic itself. For a topic registered
with :meth:`streams.app.App.batch_agent`, this consumer passes each partition's fetched records to
the agent in one call, and acks become one offset per partition (the flusher's, after the state
that covers it is written), committed by faust's own commit loop. Every other topic (changelogs
during recovery) keeps faust's path untouched.

What stays faust's: group membership, assignment, pausing partitions during recovery, seeking on
rebalance, flow control, the commit timer and transactions (``exactly_once``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from aiokafka.structs import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.engine import Record

# A fetch can hold megabytes of one partition; the loop is given back between calls this big.
RECORDS_PER_CALL = 500

BatchHandler = Callable[[int, Sequence[Record]], Awaitable[None]]


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, with whole-batch delivery for the topics of batch agents."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Next offset to commit per partition, as acked by the flusher; faust's commit takes it.
        self._acked_through: dict[TopicPartition, int] = {}

    @property
    def _batch_handlers(self) -> Mapping[str, BatchHandler]:
        handlers: Mapping[str, BatchHandler] = getattr(self.app, "batch_handlers", {})
        return handlers

    def ack_through(self, topic: str, partition: int, next_offset: int) -> None:
        """Every record of the partition below ``next_offset`` is covered by durable state."""
        # aiokafka's own type: exactly_once hands these keys to send_offsets_to_transaction,
        # which rejects faust's TP (equal as a tuple, but another class).
        tp = TopicPartition(topic, partition)
        if next_offset > self._acked_through.get(tp, -1):
            self._acked_through[tp] = next_offset

    def forget_acks(self, topic: str, partitions: set[int]) -> None:
        """Partitions revoked: their next owner commits them."""
        for p in partitions:
            self._acked_through.pop(TopicPartition(topic, p), None)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        records, active = await super()._wait_next_records(timeout)
        handlers = self._batch_handlers
        if not records or not handlers or self.should_stop or not self.flow_active:
            # faust's getmany handles (drops and seeks back) what arrives while flow is stopped.
            return records, active
        generation = self.app.consumer_generation_id
        rest: dict[TP, Any] = {}
        get_read_offset = self._read_offset.get
        for tp, batch in records.items():
            handler = handlers.get(tp.topic)
            if handler is None:
                rest[tp] = batch
                continue
            if self.app.consumer_generation_id != generation or not self.flow_active:
                continue  # a rebalance began: the next owner (maybe us) re-reads from the commit
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            read = get_read_offset(tp)
            if read is not None and batch and batch[0].offset < read:
                batch = [r for r in batch if r.offset >= read]
            if not batch:
                continue
            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            for i in range(0, len(batch), RECORDS_PER_CALL):
                if i:
                    await asyncio.sleep(0)  # scrapes and timers get in between slices
                await handler(tp.partition, batch[i:i + RECORDS_PER_CALL])
            self._read_offset[tp] = batch[-1].offset
        return rest, active

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        yield from super()._filter_tps_with_pending_acks(topics)
        for tp in list(self._acked_through):
            if topics is None or tp in topics or tp.topic in topics:
                yield tp

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self._batch_handlers:
            return self._acked_through.pop(tp, None)
        offset: int | None = super()._new_offset(tp)
        return offset


class BatchTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`BatchConsumer`."""

    Consumer = BatchConsumer
