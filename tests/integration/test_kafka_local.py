"""streams.tools.local_kafka against a real broker: start, serve aiokafka clients, crash, restart,
stop.

Each test starts its own broker on free loopback ports in its own temporary directory, so the
tests share nothing but the jar cache (from the settings, normally ~/.cache/socialpulse).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.settings import load
from streams.tools import local_kafka as kafka_local

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _free_ports(count: int) -> list[int]:
    # Hold every socket open until all are bound, so the kernel cannot hand out one port twice.
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


class _Launcher:
    """Starts brokers for one test and makes sure none outlives it."""

    def __init__(self, root: Path) -> None:
        settings = load()
        self.cache_dir = settings.kafka_cache_dir
        self.heap = settings.kafka_heap
        self.root = root
        self.data_dirs: list[Path] = []

    def start(
        self, data_dir: Path | None = None, ports: tuple[int, int] | None = None
    ) -> kafka_local.LocalKafka:
        data_dir = data_dir or self.root / f"kafka-{len(self.data_dirs)}"
        port, controller_port = ports or _free_ports(2)
        self.data_dirs.append(data_dir)
        return kafka_local.start(
            data_dir=data_dir,
            port=port,
            controller_port=controller_port,
            version=kafka_local.DEFAULT_VERSION,
            cache_dir=self.cache_dir,
            heap=self.heap,
        )

    def cleanup(self) -> None:
        for data_dir in self.data_dirs:
            kafka_local.kill(data_dir)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[_Launcher]:
    launcher = _Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.cleanup()


async def _create_topic(bootstrap: str, name: str, partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _read(
    bootstrap: str, topic: str, count: int, *, group: str | None = None, committed: bool = False
) -> list[bytes]:
    """Read ``count`` values of ``topic`` from the start (or whatever arrives within 20 s)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [msg.value for msgs in batches.values() for msg in msgs if msg.value]
        if group is not None:
            await consumer.commit()
    finally:
        await consumer.stop()
    return values


async def test_produce_consume_status_stop(launcher: _Launcher) -> None:
    broker = launcher.start()
    assert broker.bootstrap.startswith("127.0.0.1:")
    assert kafka_local.is_reachable(broker.bootstrap, 2.0)
    assert kafka_local.status(broker.data_dir) == broker

    await _create_topic(broker.bootstrap, "kl.plain")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait("kl.plain", f"v{i}".encode(), key=f"k{i}".encode())
    finally:
        await producer.stop()

    values = await _read(broker.bootstrap, "kl.plain", 5, group="kl-group")
    assert sorted(values) == [f"v{i}".encode() for i in range(5)]

    assert kafka_local.stop(broker.data_dir) is True
    assert kafka_local.status(broker.data_dir) is None
    assert not kafka_local.is_reachable(broker.bootstrap, 1.0)
    assert kafka_local.stop(broker.data_dir) is False


async def test_transactional_producer_commits(launcher: _Launcher) -> None:
    # faust's exactly_once runs on aiokafka transactional producers, offsets sent in-transaction.
    broker = launcher.start()
    await _create_topic(broker.bootstrap, "kl.tx", partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kl-tx")
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(3):
                await producer.send("kl.tx", f"committed-{i}".encode())
            await producer.send_offsets_to_transaction({TopicPartition("kl.tx", 0): 1}, "kl-tx-g")
        await producer.begin_transaction()
        await producer.send("kl.tx", b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send("kl.tx", b"committed-last")
    finally:
        await producer.stop()

    values = await _read(broker.bootstrap, "kl.tx", 4, committed=True)
    assert values == [b"committed-0", b"committed-1", b"committed-2", b"committed-last"]

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets("kl-tx-g")
    finally:
        await admin.close()
    assert offsets[TopicPartition("kl.tx", 0)].offset == 1


async def test_restart_after_kill_keeps_data(launcher: _Launcher) -> None:
    port, controller_port = _free_ports(2)
    broker = launcher.start(launcher.root / "kafka", (port, controller_port))
    meta = broker.data_dir / "logs" / "meta.properties"
    cluster_id = meta.read_text()

    await _create_topic(broker.bootstrap, "kl.durable", partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("kl.durable", b"survives")
    finally:
        await producer.stop()

    assert kafka_local.kill(broker.data_dir) is True
    assert kafka_local.status(broker.data_dir) is None
    assert kafka_local.kill(broker.data_dir) is False

    # Same directory and ports: storage must be reused, not formatted again.
    again = await asyncio.to_thread(launcher.start, broker.data_dir, (port, controller_port))
    assert again.pid != broker.pid
    assert meta.read_text() == cluster_id
    assert await _read(again.bootstrap, "kl.durable", 1) == [b"survives"]

    with pytest.raises(RuntimeError, match="already runs"):
        launcher.start(broker.data_dir, (port, controller_port))
    assert kafka_local.stop(again.data_dir) is True
    assert kafka_local.status(again.data_dir) is None
