"""streams.worker.intake on a real broker: before any fetch, a read_committed consumer does not
know a partition's last stable offset (what faust's exactly_once recovery used, reading None as an
empty changelog), while the worker's consumer thread asks the broker and gets it right."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.worker.intake import BatchConsumer, ConsumerThread
from tests.support.processes import Broker

pytestmark = pytest.mark.integration


def test_highwaters_known_before_any_fetch(kafka: Broker) -> None:
    topic = f"hw-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[int | None, dict[TopicPartition, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        try:
            for i in range(5):
                await producer.send_and_wait(topic, b"x%d" % i, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap,
                                    isolation_level="read_committed")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            thread = SimpleNamespace(_ensure_consumer=lambda: consumer)
            lso = consumer.last_stable_offset(tp)
            highwaters = await ConsumerThread._highwaters(thread, [tp])  # type: ignore[arg-type]
            return lso, dict(highwaters)
        finally:
            await consumer.stop()

    # The worker's consumer builds its thread from this class, not faust's.
    assert BatchConsumer._new_consumer_thread.__qualname__ == "BatchConsumer._new_consumer_thread"
    lso, highwaters = asyncio.run(run())
    assert lso is None  # what faust read as "empty changelog, nothing to recover"
    assert highwaters == {TopicPartition(topic, 0): 5}
