"""Batch output: a flush's records go to Kafka one partition batch at a time.

``producer.send`` costs several awaits, a metadata lookup and a future per record, and gathering
those futures adds a callback per record; a flush writes one changelog record per changed bucket,
which under catch-up is about one per event. Appending to aiokafka's ``BatchBuilder`` (C record
builder) and awaiting one future per batch keeps the per-record cost to the append.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, NamedTuple

RECORDS_PER_SLICE = 2_000


class OutRecord(NamedTuple):
    """One record to produce; a partition beyond the topic's count wraps around."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


async def send_all(producer: Any, records: Iterable[OutRecord]) -> int:
    """Send ``records`` (order kept within each topic partition) and wait until the broker has
    acknowledged every one; raises the first delivery error. Returns the number of batches.

    ``producer`` is an ``aiokafka.AIOKafkaProducer``.
    """
    builders: dict[tuple[str, int], Any] = {}
    pending: list[asyncio.Future[Any]] = []
    counts: dict[str, int] = {}
    for i, (topic, partition, key, value, headers) in enumerate(records, 1):
        if i % RECORDS_PER_SLICE == 0:
            await asyncio.sleep(0)  # let the stream and scrapes in on a large flush
        n = counts.get(topic)
        if n is None:
            await producer.client._wait_on_metadata(topic)
            n = counts[topic] = len(producer.client.cluster.partitions_for_topic(topic))
        tp = (topic, partition % n)
        batch = builders.get(tp)
        if batch is None:
            batch = builders[tp] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            # Full: ship it and start the next one (a first record always fits).
            pending.append(await producer.send_batch(batch, tp[0], partition=tp[1]))
            batch = builders[tp] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes exceeds the batch size")
    for (topic, partition), batch in builders.items():
        pending.append(await producer.send_batch(batch, topic, partition=partition))
    if pending:
        await asyncio.gather(*pending)
    return len(pending)
