"""Days of the simulated brands through the engine, in process: business-hours against
all-hours response times per account, the agents of the brand, and its top posts.

``python -m bench.care_week [--days 3] [--rate 2]``: the simulator's world with the care teams of
``deploy/config/business-hours.toml`` (the demo's), from Thursday 2026-11-26 00:00 UTC, fed to
``streams.core.engine.Engine`` by partition batches as the worker feeds it, with the event clock
(a 4-day window keeps the whole span). What it prints is what ``/metrics`` and ``GET /kpis``
would show at the end.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import orjson

from streams.core.engine import Engine
from streams.core.outcome import Outcome
from streams.core.partitioner import home_partition
from streams.core.series import compute, top_posts
from streams.settings import Settings
from streams.tools.simulate import SimulationConfig, Simulator

HOURS = Path(__file__).resolve().parents[1] / "deploy" / "config" / "business-hours.toml"
START = datetime(2026, 11, 26, tzinfo=UTC)  # a Thursday: two working days, then a weekend
BATCH = 5_000


class Record(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None


def run(days: float, rate: float) -> None:
    s = Settings(clock="event", windows=["1h", "24h", "4d"], business_hours_file=HOURS)
    sim = Simulator(SimulationConfig(seed=42, business_hours=s.business_hours))
    start = int(START.timestamp() * 1000)
    engine = Engine(s, now_ms=lambda: start + int((days + 1) * 86_400_000))
    offsets: dict[int, int] = defaultdict(int)
    pending: dict[int, list[Record]] = defaultdict(list)
    n = 0
    began = time.perf_counter()

    def flush() -> None:
        out = Outcome()
        for p, records in pending.items():
            engine.ingest_records(p, records, engine.now_ms(), out)
        pending.clear()
        engine.snapshot()

    for rec in sim.events(start, duration_s=days * 86_400, rate=rate):
        if isinstance(rec, bytes):
            continue
        p = home_partition(rec["account"], s.topic_partitions)
        pending[p].append(Record(offsets[p], rec["account"].encode(), orjson.dumps(rec)))
        offsets[p] += 1
        n += 1
        if n % BATCH == 0:
            flush()
    flush()
    series = {name: dict(rows) for name, rows in compute(engine, s).items()}
    print(f"{n:,} events from {START:%a %d %b %H:%M} UTC over {days:g} days "
          f"({time.perf_counter() - began:.0f} s); response times of the replies in the 4d window")
    print(f"{'account':10} {'schedule':14} {'replies':>7} {'p50 all':>9} {'p50 bus.':>9} "
          f"{'p90 all':>9} {'p90 bus.':>9} {'overdue':>7}")

    def minutes(name: str, key: tuple[str, ...]) -> str:
        value = series.get(name, {}).get(key)
        return f"{value / 60:8.1f}m" if value is not None else "        -"

    for acc in sim.accounts:
        hours = s.business_hours_of(acc)
        k = (acc, "all", "4d")
        print(f"{acc:10} {(hours.name if hours else '(all hours)'):14} "
              f"{series['social_replies'].get(k, 0):7.0f} "
              f"{minutes('social_response_time_seconds', (*k, '0.5'))} "
              f"{minutes('social_response_time_business_seconds', (*k, '0.5'))} "
              f"{minutes('social_response_time_seconds', (*k, '0.9'))} "
              f"{minutes('social_response_time_business_seconds', (*k, '0.9'))} "
              f"{series['social_overdue_responses'].get((acc, 'all'), 0):7.0f}")
    brand = sim.accounts[0]
    print(f"{brand}'s agents, 4d window:")
    for (acc, agent, w), replies in sorted(series.get("social_agent_replies", {}).items()):
        if acc == brand and w == "4d":
            p90 = (acc, agent, w, "0.9")
            print(f"  {agent}: {replies:.0f} replies, p90 "
                  f"{minutes('social_agent_response_time_seconds', p90)} all hours, "
                  f"{minutes('social_agent_response_time_business_seconds', p90)} business hours")
    ranking = top_posts(engine, brand)["24h"]["engagements"]
    print(f"{brand}'s top posts by engagements, last 24 h (error bound {ranking['error_bound']} "
          f"of {ranking['total']}):")
    for post in ranking["posts"][:5]:
        print(f"  {post['item']}: {post['estimate']} "
              f"[{post['lower_bound']}, {post['upper_bound']}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=2.0, help="records per second")
    args = parser.parse_args()
    run(args.days, args.rate)


if __name__ == "__main__":
    main()
