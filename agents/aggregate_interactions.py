"""Agent ``aggregate_interactions``: every input record into the engine, acked after a flush."""

from __future__ import annotations

from faust import StreamT

from streams.app import app, settings
from streams.engine import wall_ms
from streams.tables import engine, flusher
from streams.topics import interactions


@app.agent(interactions, name="aggregate_interactions")
async def aggregate_interactions(stream: StreamT) -> None:
    # noack: an input record is acked only once the flusher has written the state that holds it.
    ingest = engine.ingest
    hold = flusher.hold
    limit = settings.flush_max_events
    # StreamT's stubs omit noack(); the concrete Stream has it.
    async for event in stream.noack().events():  # type: ignore[attr-defined]
        msg = event.message
        ingest(msg.partition, msg.offset, msg.key, msg.value, wall_ms(), flusher.outcome)
        hold(event)
        if flusher.pending >= limit:
            await flusher.flush()
