"""Task ``follow_markets``: keeps this worker's copy of every worker's market mention totals."""

from __future__ import annotations

from streams.worker.app import app
from streams.worker.components import board


@app.task
async def follow_markets() -> None:
    await board.run()
