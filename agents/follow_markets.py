"""Task ``follow_markets``: keeps this worker's copy of every worker's market mention totals."""

from __future__ import annotations

from streams.app import app
from streams.tables import board


@app.task
async def follow_markets() -> None:
    await board.run()
