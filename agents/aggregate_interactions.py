"""Agent ``aggregate_interactions``: each fetched batch of input records into the engine.

A batch agent (``streams.worker.intake``): one call per partition and fetch, not per record. It acks
nothing; the flusher acks a partition's records once the state that holds them is written. A batch
that does not continue what the partition applied is refused with the offset to read again from.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.core.engine import InputRecord, wall_ms
from streams.worker.app import app
from streams.worker.components import engine, flusher
from streams.worker.topics import interactions


@app.batch_agent(interactions)
async def aggregate_interactions(partition: int, records: Sequence[InputRecord]) -> int | None:
    rewind = engine.resume_offset(partition, records[0].offset)
    if rewind is not None:
        return rewind
    engine.ingest_records(partition, records, wall_ms(), flusher.outcome)
    flusher.ack_when_durable(partition, records[-1].offset, len(records))
    await flusher.flush_if_behind()
    return None
