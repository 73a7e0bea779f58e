"""Agent ``apply_repartitioned``: the repartition topic's batches into their home partition's state.

The records an input partition read although their account lives elsewhere (SPEC §1) arrive here,
in the partition of the account's home, keyed by the account. Same protocol as the input's agent
(``aggregate_interactions``): applied with the home partition's clock and its own offset rules,
acked by the flusher once the state that holds them is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.core.engine import InputRecord, wall_ms
from streams.worker.app import app
from streams.worker.components import engine, flusher
from streams.worker.topics import repartitioned


@app.batch_agent(repartitioned)
async def apply_repartitioned(partition: int, records: Sequence[InputRecord]) -> int | None:
    rewind = engine.resume_offset(partition, records[0].offset, rekeyed=True)
    if rewind is not None:
        return rewind
    engine.ingest_records(partition, records, wall_ms(), flusher.outcome, rekeyed=True)
    flusher.ack_when_durable(partition, records[-1].offset, len(records), rekeyed=True)
    await flusher.flush_if_behind()
    return None
