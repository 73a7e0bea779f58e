"""The market board: every worker's published mention totals, read by every worker.

Share of voice divides an account's mentions by all mentions in its market, and a market's
accounts can live on several workers. Each worker publishes, per input partition it owns, the
absolute mention count per (market, platform, window resolution, bucket) to a compacted topic;
every worker reads the whole topic with its own group-less consumer. (faust's GlobalTable would be
the obvious tool, but it loses updates with several workers: https://github.com/faust-streaming/faust/issues/283.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.core.keys import MarketKey
from streams.settings import Settings

log = logging.getLogger(__name__)


class MarketBoard:
    """Latest value of every key of the market topic, kept current by ``run``."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.values: dict[bytes, float] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self.values.pop(key, None)
        else:
            try:
                self.values[key] = float(value)
            except ValueError:
                log.warning("ignoring malformed market record %r", key)

    def entries(self) -> Iterator[tuple[int, str, str, int, int, float]]:
        for key, n in self.values.items():
            try:
                yield (*MarketKey.parse(key), n)
            except ValueError:
                continue

    def expired(self, partition: int, floors: list[int]) -> list[bytes]:
        """Keys of ``partition`` whose bucket no window shows any more (to be deleted)."""
        out = []
        for key in self.values:
            try:
                k = MarketKey.parse(key)
            except ValueError:
                continue
            if (k.partition == partition and k.resolution < len(floors)
                    and k.bucket < floors[k.resolution]):
                out.append(key)
        return out

    async def run(self) -> None:
        """Follow the topic forever (reconnecting after broker trouble)."""
        while True:
            consumer = AIOKafkaConsumer(
                **self.settings.kafka_client_kwargs(), enable_auto_commit=False,
                auto_offset_reset="earliest", group_id=None,
            )
            try:
                await consumer.start()
                parts = [TopicPartition(self.topic, p)
                         for p in range(self.settings.topic_partitions)]
                consumer.assign(parts)
                await consumer.seek_to_beginning(*parts)
                while True:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                    for msgs in batch.values():
                        for m in msgs:
                            self.apply(m.key, m.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("market board reader restarting: %s", exc)
                await asyncio.sleep(2)
            finally:
                await consumer.stop()
