"""Timer ``watch_progress``: a worker that owns lagging partitions and makes no progress says so.

Every few seconds it asks the broker for the end offsets of the owned partitions of the input and
the repartition topic (the fetcher's highwaters stop moving when the fetcher does) and hands them,
with what the engine applied and what the broker confirmed as committed, to
``streams.worker.watchdog``. Past
``SOCIALPULSE_STALL_WARN_SECONDS`` it logs one line, sets ``socialpulse_stalled_seconds`` and
``GET /ready`` answers 503; past ``SOCIALPULSE_STALL_EXIT_SECONDS`` the process exits with code 3
(``EXIT_STALLED``) so that its supervisor restarts it. Table recovery and rebalances pause the
input's clock; a recovery is watched by the changes it has left to read per changelog partition.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import cast

from faust.tables.manager import TableManager

from streams.worker.app import app, health, settings
from streams.worker.components import engine, watchdog
from streams.worker.intake import BatchConsumer
from streams.worker.topics import interactions, repartitioned
from streams.worker.watchdog import EXIT_STALLED, PartitionProgress, Verdict

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = min(5.0, settings.stall_warn_seconds / 4)
# A broker that does not answer must not hang the watchdog's timer.
END_OFFSETS_TIMEOUT_S = 10.0

_fault_done = False


@app.timer_from_start(CHECK_INTERVAL_S, name="watch_progress")
async def watch_progress() -> None:
    consumer = app.consumer
    if not isinstance(consumer, BatchConsumer):
        return
    await _inject_fault(consumer)
    topic, rekeyed = interactions.get_topic_name(), repartitioned.get_topic_name()
    tps = [tp for tp in consumer.assignment() if tp.topic in (topic, rekeyed)]
    paused = bool(app.in_recovery or app.rebalancing)
    recovering = None
    if app.in_recovery:
        recovery = cast(TableManager, app.tables).recovery
        recovering = {(tp.topic, tp.partition): n
                      for tp, n in recovery.active_remaining().items()}
    ends: dict[tuple[str, int], int] = {}
    if tps and not paused:
        try:
            answer = await asyncio.wait_for(consumer.highwaters(*tps), END_OFFSETS_TIMEOUT_S)
            ends = {(tp.topic, tp.partition): off for tp, off in answer.items()
                    if off is not None}
        except Exception as exc:  # broker away: nothing is known to be waiting
            log.debug("watchdog: no end offsets: %s", exc)
    progress = {}
    for tp in tps:
        ps = engine.partitions.get(tp.partition)
        last = -1 if ps is None else (ps.rekeyed_last if tp.topic == rekeyed else ps.last_offset)
        progress[(tp.topic, tp.partition)] = PartitionProgress(
            ends.get((tp.topic, tp.partition)), last + 1 if last >= 0 else None,
            consumer.confirmed_commits.get(tp))
    before = watchdog.latest
    reading = watchdog.observe(time.monotonic(), progress, paused=paused, recovering=recovering)
    health.stalled_seconds.set(round(reading.stalled_seconds, 1))
    if reading.verdict is not Verdict.OK and before.verdict is Verdict.OK:
        log.error("worker stalled: partitions %s have had records waiting for %.0f s "
                  "with no %s progress; GET /ready fails, exit after %.0f s",
                  ", ".join(f"{t}/{p}" for t, p in reading.stuck), reading.stalled_seconds,
                  reading.half, settings.stall_exit_seconds)
    elif reading.verdict is Verdict.OK and before.verdict is not Verdict.OK:
        log.warning("worker progressing again after a stall")
    if reading.verdict is Verdict.EXIT:
        log.critical("worker stalled for %.0f s (%s partitions %s): exiting with code %d so "
                     "that the supervisor restarts it", reading.stalled_seconds, reading.half,
                     ", ".join(f"{t}/{p}" for t, p in reading.stuck), EXIT_STALLED)
        logging.shutdown()
        os._exit(EXIT_STALLED)  # a wedged worker may not stop cleanly; its state is durable


async def _inject_fault(consumer: BatchConsumer) -> None:
    """``SOCIALPULSE_FAULT_INJECTION`` (tests only): stop the fetcher once something was
    applied, or refuse every commit."""
    global _fault_done
    fault = settings.fault_injection
    if fault == "none" or _fault_done:
        return
    if fault == "stop_commits":
        consumer.refuse_commits = True
        _fault_done = True
    elif fault == "stop_fetcher" and any(ps.last_offset >= 0 for ps in engine.partitions.values()):
        log.warning("fault injection: stopping the fetcher")
        await app._fetcher.stop()
        _fault_done = True
