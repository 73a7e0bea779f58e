"""Pipeline (2), the baseline: the faust agent a user would write first.

One JSON-decoded record at a time, one hopping-window table update per event for a single count
per account (``app.Table('counts', default=int).hopping(300, 60, expires=3600)``,
``counts[account] += 1``), every update written to the table's changelog by faust. Windows follow
faust's default, the Kafka record timestamp. faust's defaults otherwise (at-least-once,
in-memory store).

``python -m bench.naive_faust --bootstrap H:P --topic T --partitions P --expect N --app-id ID``
prints its ``BENCH-RESULT`` line once it has processed ``N`` records, then exits at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import faust

from bench.procs import emit_report, self_usage


def build(bootstrap: str, topic: str, partitions: int, expect: int, app_id: str,
          datadir: Path) -> faust.App:
    app = faust.App(
        app_id, broker=f"kafka://{bootstrap}", store="memory://", datadir=str(datadir),
        topic_partitions=partitions, web_enabled=False, consumer_auto_offset_reset="earliest",
    )
    source = app.topic(topic, key_type=bytes, value_serializer="json", partitions=partitions)
    counts = app.Table("counts", default=int, partitions=partitions).hopping(
        300, 60, expires=timedelta(seconds=3600))
    state: dict[str, float] = {"n": 0, "t_first": 0.0, "cpu_first": 0.0}

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for value in stream:
            if state["n"] == 0:
                state["t_first"], state["cpu_first"] = time.time(), time.process_time()
            counts[value["account"]] += 1
            state["n"] += 1
            if state["n"] >= expect:
                t_last, cpu_last = time.time(), time.process_time()
                _, maxrss = self_usage()
                emit_report(int(state["n"]), state["t_first"], t_last, state["cpu_first"],
                            cpu_last, {"maxrss_kib": maxrss})
                sys.stderr.flush()
                os._exit(0)  # the measurement is done; faust's shutdown is not part of it

    return app


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.naive_faust", description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--app-id", required=True)
    p.add_argument("--datadir", type=Path, required=True)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    app = build(a.bootstrap, a.topic, a.partitions, a.expect, a.app_id, a.datadir)
    from faust.worker import Worker

    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()
    return 1  # only reached if the worker stopped before the expected count


if __name__ == "__main__":
    raise SystemExit(main())
