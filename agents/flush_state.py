"""Timer ``flush_state``: makes the engine's changes durable, then acks the records they cover."""

from __future__ import annotations

from streams.worker.app import app, settings
from streams.worker.components import flusher


@app.timer(interval=settings.flush_interval_seconds, name="flush_state")
async def flush_state() -> None:
    await flusher.flush()
