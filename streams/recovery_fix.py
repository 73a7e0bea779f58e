"""A fix for faust's table recovery under ``processing_guarantee=exactly_once``.

Before it recovers a table, faust asks for the highwater of each changelog partition. In a
transaction (``read_committed``), its aiokafka driver answers with the consumer's
``last_stable_offset(tp)``, which aiokafka only knows once that partition has been fetched, and
faust reads the resulting ``None`` as an empty changelog (highwater -1): recovery is skipped. The
worker then starts with empty tables while the group's committed offsets are far ahead, and every
event before them is lost (issue #5, fault 1: 126,126 of 185,027 events after 10 SIGKILLs). The
same symptom: robinhood/faust#340 (events missing after kill -9 with exactly_once), the same
cause: robinhood/faust#658 (the last stable offset unknown during a rebalance) and
robinhood/aiokafka#7 (an unknown highwater becomes -1). ``end_offsets`` asks the broker instead,
and a ``read_committed`` consumer's ListOffsets answers the last stable offset: what faust wants,
known before any fetch. With ``at_least_once`` faust already uses ``end_offsets``: nothing changes
there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread


async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()
    return dict(await consumer.end_offsets(partitions))


def install() -> None:
    """Make faust ask the broker for changelog highwaters in both processing guarantees."""
    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
