"""streams.recovery_fix on a real broker: before any fetch, a read_committed consumer does not
know a partition's last stable offset (what faust's exactly_once recovery used, reading None as
an empty changelog), while the patched highwaters ask the broker and get it right."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams import recovery_fix
from tests.conftest import Broker

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
            return lso, dict(await recovery_fix._highwaters(thread, [tp]))
        finally:
            await consumer.stop()

    recovery_fix.install()
    assert AIOKafkaConsumerThread._highwaters is recovery_fix._highwaters
    lso, highwaters = asyncio.run(run())
    assert lso is None  # what faust read as "empty changelog, nothing to recover"
    assert highwaters == {TopicPartition(topic, 0): 5}
