"""The benchmark's broker: a private ``streams.tools.local_kafka`` broker, topics, offsets."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings
from streams.tools import local_kafka as kafka_local
from streams.tools.local_kafka import free_port


@dataclass
class Broker:
    """A broker the bench talks to; ``data_dir`` is set when the bench started (and owns) it."""

    bootstrap: str
    data_dir: Path | None = None
    version: str = ""

    def stop(self) -> None:
        if self.data_dir is not None:
            kafka_local.stop(self.data_dir)


def start_broker(workdir: Path, heap: str = "1g") -> Broker:
    """A fresh single-node broker on free ports, version and jar cache from the defaults."""
    defaults = Settings()
    data_dir = workdir / "kafka"
    started = kafka_local.start(
        data_dir=data_dir, port=free_port(), controller_port=free_port(),
        version=defaults.kafka_version, cache_dir=defaults.kafka_cache_dir, heap=heap,
    )
    return Broker(started.bootstrap, data_dir, defaults.kafka_version)


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> end offset (the next offset to be written) of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(off) for tp, off in ends.items()}
    finally:
        await consumer.stop()


class GroupWatch:
    """Reads the committed offsets of a consumer group (cheap, from outside the process)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.group = group
        self.topic = topic
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)

    async def __aenter__(self) -> GroupWatch:
        await self.admin.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.admin.close()

    async def committed(self) -> int:
        """Sum of committed offsets over the topic's partitions (0 before the first commit)."""
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        return sum(max(0, meta.offset) for tp, meta in offsets.items() if tp.topic == self.topic)
