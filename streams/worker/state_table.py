"""The ``state`` table: the engine's durable copy in faust, and the rebalance hooks around it.

One changelog record per bucket, account core, dedup chunk and partition mark (keys in
``streams.core.keys``); the flusher writes them itself (``streams.worker.flusher``), so the table is
never written through faust's per-key API. What faust gives: the changelog topic, its recovery
into ``data`` at assignment, standby replicas and the rebalance callbacks, used here to rebuild
the engine's partitions once recovered and to drop the revoked ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust
from faust.types import TP

from streams.core.engine import Engine
from streams.core.keys import partition_prefix
from streams.export.health import Health

# The largest state record the changelog accepts (its topic's max.message.bytes).
CHANGELOG_MAX_BYTES = 8 * 1024 * 1024

RevokedHook = Callable[[set[int]], Awaitable[None]]


class StateTable(faust.Table):
    """The durable copy of the engine; rebuilds the engine's partitions after recovery."""

    def __init__(
        self, *args: Any, engine: Engine, health: Health, input_topic: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.engine = engine
        self.health = health
        self.input_topic = input_topic
        # Called with the input partitions a rebalance took away, before faust's own handling.
        self.on_revoked: list[RevokedHook] = []

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        lost = {tp.partition for tp in revoked if tp.topic == self.input_topic}
        if lost:
            for hook in self.on_revoked:
                await hook(lost)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        engine = self.engine
        owned = {tp.partition for tp in active_tps}
        for p in owned - engine.partitions.keys():
            engine.restore(p, _items_of(self.data, p))
        for p in list(engine.partitions):
            if p not in owned:
                engine.drop(p)
        self.health.partitions.set(len(owned))


def _items_of(data: Any, partition: int) -> Iterable[tuple[bytes, bytes]]:
    prefix = partition_prefix(partition)
    return [(k, v) for k, v in data.items() if k.startswith(prefix) and v is not None]
