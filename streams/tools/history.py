"""``socialpulse history``: weeks of simulated history in a Prometheus TSDB, to try
``socialpulse report`` (and the dashboards) without running the product for weeks first.

The simulator's world (the demo's four brands in one market, their care teams on the business
hours of ``deploy/config/business-hours.toml``) goes through the real engine with the event
clock, in process, as the worker feeds it; every ``--scrape`` of event time the series the
report reads (the lifetime counters, followers, reach) are taken as ``/metrics`` would give them
and written as OpenMetrics with their timestamps, a day per file; ``promtool tsdb
create-blocks-from openmetrics`` turns each into TSDB blocks. Then a Prometheus started on those
blocks evaluates the recording rules of ``deploy/prometheus/rules/recording.yml`` over the whole
span (``promtool tsdb create-blocks-from rules``), as a live Prometheus would have at each
evaluation; their blocks join the others. The result is a TSDB directory for ``prometheus
--storage.tsdb.path``.

Counters count by arrival; here arrival is the simulated time, since the engine reads the events
in their order, so the history looks as if the workers had run all along.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import yaml

from streams.core.catalogue import TOTAL_KPIS, part_names, sample_metrics
from streams.core.engine import Engine
from streams.core.outcome import Outcome
from streams.core.partitioner import home_partition
from streams.core.series import compute
from streams.settings import Settings, read_business_hours
from streams.tools.preflight import CliError
from streams.tools.ready import wait_ready
from streams.tools.simulate import DEFAULT_ACCOUNTS, SimulationConfig, Simulator

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "recording.yml"
HOURS = ROOT / "deploy" / "config" / "business-hours.toml"
TOTALS_GROUP = "socialpulse-lifetime-totals"
JOB, INSTANCE = "socialpulse", "history:6066"
BATCH = 5_000


class _Record(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None


def _sample_names() -> set[str]:
    return {name for m in TOTAL_KPIS for name, _labels in part_names(m)}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Scrapes:
    """One day of scrapes at a time as an OpenMetrics file (a family's samples together)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.counters = _sample_names()
        self.rows: dict[str, list[str]] = defaultdict(list)
        self.labels = {name: m.labels for name, m in sample_metrics().items()}

    def take(self, at_ms: int) -> None:
        ts = f"{at_ms / 1000:.3f}"
        for name, rows in compute(self.engine, self.settings, now=at_ms).items():
            if name in self.counters:
                keep = rows
            elif name in ("social_followers", "social_reach"):  # platform "all"
                keep = [r for r in rows if r[0][1] == "all"]
            else:
                continue
            labels = self.labels[name]
            for values, value in keep:
                pairs = [f'job="{JOB}"', f'instance="{INSTANCE}"', *(
                    f'{k}="{_escape(v)}"' for k, v in zip(labels, values, strict=True) if v)]
                self.rows[name].append(f"{name}{{{','.join(pairs)}}} {value!r} {ts}\n")

    def write(self, path: Path) -> bool:
        if not self.rows:
            return False
        with path.open("w", encoding="utf-8") as f:
            for name, rows in self.rows.items():
                f.write(f"# TYPE {name} unknown\n")
                f.writelines(rows)
            f.write("# EOF\n")
        self.rows.clear()
        return True


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise CliError("promtool not found: scripts/setup installs Debian's prometheus")
    return found


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise CliError(f"{Path(cmd[0]).name} {cmd[1]} {cmd[2]} failed: {last[0]}")


def simulate(
    days: float, end: datetime, scrape_s: float, rate: float, tsdb: Path, seed: int,
    progress: bool = True,
) -> tuple[int, int]:
    """The simulated span ending at ``end`` into OpenMetrics blocks under ``tsdb``; returns
    (events, scrapes)."""
    # A 4d window beside the defaults: the care desks close for the weekend, and a message is
    # kept for its reply as long as the largest window (README, business hours).
    s = Settings(clock="event", windows=["5m", "1h", "24h", "4d"], business_hours_file=HOURS,
                 markets={a: "coffee" for a in DEFAULT_ACCOUNTS}, response_sla_seconds=3600)
    start_ms = int((end - timedelta(days=days)).timestamp() * 1000)
    end_ms = int(end.timestamp() * 1000)
    clock = [start_ms]
    engine = Engine(s, now_ms=lambda: clock[0])
    sim = Simulator(SimulationConfig(seed=seed, market="coffee",
                                     business_hours=read_business_hours(HOURS)))
    scrapes = _Scrapes(s, engine)
    scrape_ms = int(scrape_s * 1000)
    next_scrape = start_ms + scrape_ms
    day_ms = 86_400_000
    next_day = start_ms + day_ms
    offsets: dict[int, int] = defaultdict(int)
    pending: dict[int, list[_Record]] = defaultdict(list)
    work = Path(tempfile.mkdtemp(prefix="socialpulse-history-"))
    events = taken = files = 0

    def apply() -> None:
        out = Outcome()
        for p, records in pending.items():
            engine.ingest_records(p, records, clock[0], out)
        pending.clear()
        engine.snapshot()

    def to_blocks() -> None:
        nonlocal files
        path = work / f"day-{files:03d}.om"
        if scrapes.write(path):
            _run([_promtool(), "tsdb", "create-blocks-from", "openmetrics", str(path),
                  str(tsdb)])
            path.unlink()
            files += 1

    try:
        for rec in _events(sim, start_ms, end_ms, rate):
            ts = rec["ts"] if isinstance(rec["ts"], int) else _ms(rec["ts"])
            while ts >= next_scrape:
                apply()
                clock[0] = next_scrape
                scrapes.take(next_scrape)
                taken += 1
                next_scrape += scrape_ms
                if next_scrape > next_day:
                    to_blocks()
                    next_day += day_ms
                    if progress:
                        print(f"history: day {files} of {days:g} ({events:,} events)",
                              file=sys.stderr, flush=True)
            p = home_partition(rec["account"], s.topic_partitions)
            pending[p].append(_Record(offsets[p], rec["account"].encode(), orjson.dumps(rec)))
            offsets[p] += 1
            events += 1
            if len(pending[p]) >= BATCH:
                apply()
        apply()
        clock[0] = end_ms
        scrapes.take(end_ms)
        taken += 1
        to_blocks()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return events, taken


def _events(sim: Simulator, start_ms: int, end_ms: int, rate: float) -> Iterator[dict[str, Any]]:
    for rec in sim.events(start_ms, duration_s=(end_ms - start_ms) / 1000, rate=rate):
        if not isinstance(rec, bytes):
            yield rec


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def evaluate_rules(tsdb: Path, start: datetime, end: datetime, interval_s: float) -> None:
    """The lifetime totals' recording rules over [start, end], by a Prometheus on ``tsdb``."""
    from streams.tools.local_kafka import free_port

    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="socialpulse-rules-"))
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    totals = [g for g in groups if g["name"] == TOTALS_GROUP]
    rules = work / "totals.yml"
    rules.write_text(yaml.safe_dump({"groups": totals}, sort_keys=False))
    config = work / "prometheus.yml"
    config.write_text("global: {}\n")
    prom = subprocess.Popen(
        [shutil.which("prometheus") or "prometheus", f"--config.file={config}",
         f"--storage.tsdb.path={tsdb}", f"--web.listen-address=127.0.0.1:{port}",
         "--storage.tsdb.retention.time=100y", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", what="Prometheus",
                   running=lambda: prom.poll() is None)
        out = work / "blocks"
        _run([_promtool(), "tsdb", "create-blocks-from", "rules",
              f"--start={int(start.timestamp())}", f"--end={int(end.timestamp())}",
              f"--url=http://127.0.0.1:{port}", f"--output-dir={out}",
              f"--eval-interval={int(interval_s)}s", str(rules)])
    finally:
        prom.terminate()
        prom.wait(60)
    for block in out.iterdir():
        if block.is_dir():
            shutil.move(str(block), tsdb / block.name)
    shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise CliError(f"{args.out} exists: give a new --out (a TSDB is not merged into)")
    end = (datetime.fromisoformat(args.end).astimezone(UTC) if args.end
           else datetime.now(UTC).replace(microsecond=0))
    start = end - timedelta(days=args.days)
    args.out.mkdir(parents=True)
    began = time.monotonic()
    events, scrapes = simulate(args.days, end, args.scrape, args.rate, args.out, args.seed)
    print(f"history: {events:,} events, {scrapes:,} scrapes; evaluating the recording rules",
          file=sys.stderr, flush=True)
    evaluate_rules(args.out, start, end, args.scrape)
    print(f"history: {args.out} holds {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC "
          f"({time.monotonic() - began:.0f} s): prometheus --storage.tsdb.path={args.out} "
          "--storage.tsdb.retention.time=100y", file=sys.stderr)
    return 0
