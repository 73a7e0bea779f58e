"""Timer ``purge_repartitioned``: the repartition topic loses what this worker's commits cover.

Every ``SOCIALPULSE_REPARTITION_PURGE_SECONDS`` it hands the offsets the broker confirmed as
committed for the owned repartition partitions to ``streams.worker.purger``.
"""

from __future__ import annotations

from streams.worker.app import app, settings
from streams.worker.components import purger
from streams.worker.intake import BatchConsumer


@app.timer(interval=settings.repartition_purge_seconds, name="purge_repartitioned")
async def purge_repartitioned() -> None:
    consumer = app.consumer
    if not isinstance(consumer, BatchConsumer) or app.rebalancing:
        return
    owned = {tp.partition for tp in consumer.assignment() if tp.topic == purger.topic}
    committed = {tp.partition: off for tp, off in consumer.confirmed_commits.items()
                 if tp.topic == purger.topic and tp.partition in owned}
    await purger.purge(committed)
