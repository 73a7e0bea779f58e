"""Pipeline (4), the peer: the same core counts in Quix Streams (PyPI ``quixstreams``).

Impressions, engagements (likes, comments, shares, saves) and clicks per account (the record key),
per platform, in event-time tumbling windows as wide as socialpulse's buckets for 5m, 1h and 24h
(10 s, 2 min, 48 min, each kept open for its window's length, as socialpulse keeps 30 buckets),
with RocksDB state and changelog topics (Quix defaults, at-least-once). The other event types are
decoded and filtered out.

Runs in its own virtualenv (``bench.cli`` creates it): quixstreams pins pydantic below socialpulse's
version. It imports nothing of socialpulse, only ``bench.procs`` (standard library).

``python -m bench.quix_pipeline --bootstrap H:P --topic T --expect N --group G --state-dir D``
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from quixstreams import Application

from bench.procs import emit_report, self_usage

ENGAGEMENTS = frozenset({"like", "comment", "share", "save"})
CORE = ENGAGEMENTS | {"impression", "click"}
# (label, bucket width, how long a bucket stays open) in ms, as socialpulse's default windows.
WINDOWS = (("5m", 10_000, 300_000), ("1h", 120_000, 3_600_000), ("24h", 2_880_000, 86_400_000))


def event_ms(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
    """Event time from ``ts``: epoch milliseconds or an RFC 3339 string."""
    ts = value.get("ts") if isinstance(value, dict) else None
    if type(ts) is int:
        return ts
    if isinstance(ts, str):
        try:
            return int(datetime.fromisoformat(ts).timestamp() * 1000)
        except ValueError:
            pass
    return timestamp


# Window updates and late drops, reported with the result as a sanity check of the pipeline.
COUNTS = {"updates": 0, "late": 0}


def on_late(*args: Any) -> bool:
    COUNTS["late"] += 1
    return False  # counted here instead of logged


def _slot(t: str) -> int:
    return 0 if t == "impression" else 2 if t == "click" else 1


def initializer(value: dict[str, Any]) -> dict[str, list[int]]:
    COUNTS["updates"] += 1
    agg = {value["platform"]: [0, 0, 0]}
    agg[value["platform"]][_slot(value["type"])] = 1
    return agg


def reducer(agg: dict[str, list[int]], value: dict[str, Any]) -> dict[str, list[int]]:
    COUNTS["updates"] += 1
    counts = agg.get(value["platform"])
    if counts is None:
        counts = agg[value["platform"]] = [0, 0, 0]
    counts[_slot(value["type"])] += 1
    return agg


def run(bootstrap: str, topic: str, expect: int, group: str, state_dir: Path) -> None:
    state: dict[str, float] = {"n": 0, "t_first": 0.0, "cpu_first": 0.0, "t_last": 0.0,
                               "cpu_last": 0.0}
    app: Application

    def processed(topic_name: str, partition: int, offset: int) -> None:
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["t_first"], state["cpu_first"] = time.time(), time.process_time()
        if n == expect:
            state["t_last"], state["cpu_last"] = time.time(), time.process_time()
            app.stop()

    app = Application(
        broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
        state_dir=state_dir, loglevel="WARNING", on_message_processed=processed,
    )
    source = app.topic(topic, value_deserializer="json", timestamp_extractor=event_ms)
    sdf = app.dataframe(source)
    sdf = sdf.filter(lambda v: v.get("type") in CORE)
    for label, width, keep in WINDOWS:
        (sdf.tumbling_window(width, grace_ms=keep, name=f"core-{label}", on_late=on_late)
         .reduce(reducer, initializer).final())
    app.run()
    _, maxrss = self_usage()
    emit_report(int(state["n"]), state["t_first"], state["t_last"], state["cpu_first"],
                state["cpu_last"], {"maxrss_kib": maxrss, "window_updates": COUNTS["updates"],
                                    "late": COUNTS["late"]})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quix_pipeline", description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    run(a.bootstrap, a.topic, a.expect, a.group, a.state_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
