"""Batch intake: the records of an input topic reach their agent one fetched batch at a time.

faust hands every record to its stream through the conductor, a channel queue and the stream
iterator, and its fetcher wraps each hand-over in ``wait_first`` (two tasks and an
``asyncio.wait``). Measured with py-spy under ``scripts/bench --profile``, that plumbing was most of
a socialpulse worker's CPU, several times the KPI arithmetic itself. For a topic registered with
:meth:`streams.worker.app.App.batch_agent`, this consumer passes each partition's fetched records to
the agent in one call, and acks become one offset per partition (the flusher's, after the state that
covers it is written), committed by faust's own commit loop. Every other topic (changelogs during
recovery) keeps faust's path untouched.

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

from streams.core.engine import InputRecord

# A fetch can hold megabytes of one partition; the loop is given back between calls this big.
RECORDS_PER_CALL = 500

# A batch agent returns None once it applied the records, or the offset the partition must be read
# again from when the batch does not continue what it applied (-1: from the first offset). faust
# resumes fetching before it seeks the input back to the committed offsets
# (https://github.com/faust-streaming/faust/issues/216): a partition kept across a rebalance still
# has the position its discarded prefetch reached, so records from beyond a gap came first, and the
# gap's records, re-read after the seek, would be skipped as already applied.
BatchHandler = Callable[[int, Sequence[InputRecord]], Awaitable[int | None]]


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's aiokafka consumer thread, asking the broker for changelog highwaters.

    Before it recovers a table, faust asks for the highwater of each changelog partition. Under
    ``exactly_once`` (``read_committed``) its driver answers with the consumer's
    ``last_stable_offset(tp)``, which aiokafka only knows once that partition has been fetched, and
    faust reads the resulting ``None`` as an empty changelog: recovery is skipped and the worker
    starts with empty state while the committed offsets are far ahead, and every event below them is
    lost. Same symptom: https://github.com/robinhood/faust/issues/340; same cause:
    https://github.com/robinhood/faust/issues/658, https://github.com/robinhood/aiokafka/issues/7.
    ``end_offsets`` asks the broker, and a ``read_committed`` consumer's ListOffsets answers the
    last stable offset, known before any fetch. With ``at_least_once`` faust already uses
    ``end_offsets``.
    """

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        return dict(await consumer.end_offsets(partitions))


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, with whole-batch delivery for the topics of batch agents."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Next offset to commit per partition, as acked by the flusher; faust's commit takes it.
        self._acked_through: dict[TopicPartition, int] = {}
        # Offsets the broker confirmed as committed, per partition of the batch topics (faust's
        # own ``_committed_offset`` is updated even when a commit fails). Read by the watchdog.
        self.confirmed_commits: dict[TP, int] = {}
        # Tests only (``SOCIALPULSE_FAULT_INJECTION=stop_commits``): every commit fails.
        self.refuse_commits = False

    def resume_partitions(self, tps: Any) -> None:
        if getattr(self.app, "hold_changelogs", False):
            # Tests only (``SOCIALPULSE_FAULT_INJECTION=stop_recovery``): the changelog
            # partitions a recovery resumes are never fetched, the shape of faust's recovery
            # hang (https://github.com/faust-streaming/faust/issues/155).
            tps = [tp for tp in tps if not self._is_changelog_tp(tp)]
        super().resume_partitions(tps)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

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

    def note_committed(self, topic: str, offsets: Mapping[int, int]) -> None:
        """The group's committed offsets as the broker reported them at a recovery: a worker
        that takes over partitions with nothing new in them has committed nothing itself, yet
        its partitions are not behind (the watchdog read them as stalled)."""
        assignment = self.assignment()
        for p, offset in offsets.items():
            tp = TP(topic, p)
            if tp in assignment and offset > self.confirmed_commits.get(tp, -1):
                self.confirmed_commits[tp] = offset

    def forget_acks(self, topic: str, partitions: set[int]) -> None:
        """Partitions revoked: their next owner commits them."""
        for p in partitions:
            self._acked_through.pop(TopicPartition(topic, p), None)
            self.confirmed_commits.pop(TP(topic, p), None)

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
                # Fetched before the partition became active (during recovery): read again
                # from the batch's start, or these records are skipped for good when nothing
                # follows them (a repartition partition's last forwards; a committed offset,
                # if any, is where faust seeks next anyway).
                if tp in self.assignment():
                    await self.seek(tp, batch[0].offset)
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
                    if self.app.consumer_generation_id != generation or not self.flow_active:
                        break  # revoked meanwhile: its next owner reads the rest
                rewind = await handler(tp.partition, batch[i:i + RECORDS_PER_CALL])
                if rewind is not None:
                    await self._rewind(tp, rewind)
                    break
            else:
                self._read_offset[tp] = batch[-1].offset
        return rest, active

    async def _rewind(self, tp: TP, offset: int) -> None:
        """The agent refused a batch that did not continue what it applied: read again from
        ``offset`` (-1: the partition's first offset)."""
        if tp not in self.assignment():
            return  # revoked meanwhile: its next owner seeks it to the committed offset
        if offset < 0:
            offset = (await self.earliest_offsets(tp))[tp]
        self.log.info("read %s again from offset %d", tp, offset)
        await self.seek(tp, offset)

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        yield from super()._filter_tps_with_pending_acks(topics)
        for tp in list(self._acked_through):
            if topics is None or tp in topics or tp.topic in topics:
                yield tp

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        if self.refuse_commits:
            return False
        assignment = self.assignment()
        did_commit: bool = await super()._commit_offsets(
            offsets, start_new_transaction=start_new_transaction)
        if did_commit:
            handlers = self._batch_handlers
            self.confirmed_commits.update(
                (tp, offset) for tp, offset in offsets.items()
                if tp.topic in handlers and tp in assignment)
        return did_commit

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic in self._batch_handlers:
            return self._acked_through.pop(tp, None)
        offset: int | None = super()._new_offset(tp)
        return offset


class BatchTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`BatchConsumer`."""

    Consumer = BatchConsumer
