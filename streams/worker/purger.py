"""Deletes what the repartition topic holds below the group's committed offsets.

Forwarded records (``streams.core.engine``, SPEC §1) are read once, by their home partition's
owner: once that owner's commit covers them they are never needed again (a replay of the input
forwards them anew). The topic keeps its records without a time limit (``retention.ms=-1``) so
that a worker away for longer than a retention period loses none, and this deletes them
instead, the way Kafka Streams purges its repartition topics after each commit. A broker that
refuses (no DELETE permission) costs disk, not correctness: one warning, then retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

DELETE_TIMEOUT_MS = 10_000


class RepartitionPurger:
    """Deletes the records of ``topic`` below each partition's confirmed commit."""

    def __init__(self, topic: str, kafka_client_kwargs: Callable[[], dict[str, Any]]) -> None:
        self.topic = topic
        self.kafka_client_kwargs = kafka_client_kwargs
        self.purged: dict[int, int] = {}  # partition -> offset deleted below
        self._warned = False

    def due(self, committed: Mapping[int, int]) -> dict[int, int]:
        """The partitions whose commit moved past what was deleted, and where to cut."""
        return {p: off for p, off in committed.items() if off > self.purged.get(p, 0)}

    async def purge(self, committed: Mapping[int, int]) -> dict[int, int]:
        """Delete below ``committed`` (partition -> committed offset); returns what it cut."""
        due = self.due(committed)
        if not due:
            return {}
        admin = AIOKafkaAdminClient(**self.kafka_client_kwargs())
        await admin.start()
        try:
            await admin.delete_records(
                {TopicPartition(self.topic, p): RecordsToDelete(off) for p, off in due.items()},
                timeout_ms=DELETE_TIMEOUT_MS)
        except Exception as exc:
            if not self._warned:
                log.warning("cannot delete consumed records of %s (they stay on disk): %r",
                            self.topic, exc)
                self._warned = True
            return {}
        finally:
            await admin.close()
        self.purged.update(due)
        return due

    def forget(self, partitions: set[int]) -> None:
        """Revoked: their next owner deletes what its commits cover."""
        for p in partitions:
            self.purged.pop(p, None)
