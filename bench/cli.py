"""``python -m bench``: run the whole benchmark, print the report, optionally write it as JSON.

``--tiny`` is a seconds-long run of every phase (used by the test suite so the harness does not
rot); its numbers mean nothing. The default is the full size (see ``bench.sizes.FULL``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import kafka
from bench.phases import Bench, Row, ensure_quix_venv, quix_probe
from bench.report import ratios, render
from bench.sizes import FULL, TINY

PIPELINES = ("raw", "naive", "alo", "eos", "quix")
PHASES = (*PIPELINES, "live", "memory", "scale")
DEFAULT_QUIX_VENV = Path.home() / ".cache" / "socialpulse" / "bench-quix-venv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.add_argument("--bootstrap", help="use this broker instead of starting a private one")
    p.add_argument("--events", type=int, help="records in the throughput topic")
    p.add_argument("--naive-events", type=int,
                   help="records the naive faust baseline reads (default: a prefix that takes "
                        "about 2 minutes at its speed, or the whole topic when smaller)")
    p.add_argument("--memory-events", type=int, help="records over 24 h for the memory phase")
    p.add_argument("--scale-events", type=int,
                   help="records over 24 h for the day-at-scale phase (measured at a quarter, "
                        "half and all of them)")
    p.add_argument("--rate", type=float,
                   help="background events/s of the latency and scrape phases (default: half "
                        "the sustained rate of socialpulse at_least_once)")
    p.add_argument("--skip", default="", help=f"comma-separated phases to skip: {PHASES}")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="also profile the worker with py-spy; collapsed stacks go to DIR")
    p.add_argument("--quix-venv", type=Path, default=DEFAULT_QUIX_VENV,
                   help="virtualenv for Quix Streams (created when missing, except --tiny)")
    p.add_argument("--workdir", type=Path, help="keep logs and state here (default: a temp dir)")
    return p


def _git() -> str:
    """The commit the work tree is on, and whether the worker's code differs from it."""
    import subprocess

    from bench.procs import ROOT

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "streams", "agents",
                                "schemas"], cwd=ROOT, text=True, capture_output=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = TINY if args.tiny else FULL
    overrides = {k: v for k, v in (("events", args.events), ("memory_events", args.memory_events))
                 if v}
    if args.scale_events:
        n = args.scale_events
        overrides.update(scale_events=n, scale_points=(n // 4, n // 2, n))
    sizes = dataclasses.replace(sizes, **overrides)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    started = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="socialpulse-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"meta": {
        "size": sizes.name, "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpus": os.cpu_count(), "load_start": round(os.getloadavg()[0], 2),
        "command": "scripts/bench " + shlex.join(sys.argv[1:]), "users": sizes.users,
        "sizes": dataclasses.asdict(sizes), "workdir": str(workdir),
    }}
    res["meta"]["git"] = _git()
    if args.bootstrap:
        broker = kafka.Broker(args.bootstrap)
    else:
        _log("starting a private Kafka broker (heap 1g) ...")
        broker = await asyncio.to_thread(kafka.start_broker, workdir, "1g")
    res["meta"].update(bootstrap=broker.bootstrap, kafka_version=broker.version)
    quix_python: Path | None = None
    if "quix" not in skip:
        if (args.quix_venv / "bin" / "python").exists() or not args.tiny:
            quix_python = await asyncio.to_thread(ensure_quix_venv, args.quix_venv, _log)
        res["quix_install"] = (quix_probe(quix_python) if quix_python else
                               {"status": "not installed", "venv": str(args.quix_venv)})
    try:
        bench = Bench(sizes, workdir, broker, quix_python=quix_python, log=_log)
        topic = f"bench-tp-{bench.run_id}"
        n, res["preload"] = await bench.preload(topic, sizes.extra_accounts, sizes.events,
                                                sizes.span_s)
        naive_n = min(n, args.naive_events or (2_000 if args.tiny else 100_000))
        rows: list[Row] = []
        steps = (("raw", lambda: bench.raw(topic, n)),
                 ("naive", lambda: bench.naive_faust(topic, naive_n)),
                 ("alo", lambda: bench.socialpulse(topic, n, "at_least_once")),
                 ("eos", lambda: bench.socialpulse(topic, n, "exactly_once")),
                 ("quix", lambda: bench.quix(topic, n)))
        for key, step in steps:
            if key in skip:
                continue
            _log(f"throughput: {key} ...")
            row = await step()
            if key == "naive" and row.status == "ok" and naive_n < n:
                row.note = f"first {naive_n:,} of {n:,} records (whole topic: ~{n / row.eps:.0f} s)"
            rows.append(row)
            _log(f"  {row.label}: {row.status} {row.eps:,.0f} events/s, {row.cpu_us:,.1f} "
                 f"CPU-us/event, peak {row.rss_mib:,.0f} MiB {row.note}")
        res["throughput"] = [r.as_dict() for r in rows]
        res["ratios"] = ratios(res["throughput"])
        alo = next((r for r in rows if r.key == "socialpulse_alo" and r.status == "ok"), None)
        rate = args.rate or min(sizes.latency_max_rate, alo.eps / 2 if alo else 1000.0)
        if "live" not in skip:
            _log(f"latency and scrape cost at {rate:,.0f} events/s ...")
            res["latency"], res["scrape"] = await bench.live(rate)
        if "memory" not in skip:
            _log("memory after 24 h of event time ...")
            res["memory"] = await bench.memory()
        if "scale" not in skip:
            _log(f"day at scale: {sizes.scale_events:,} events over 24 h ...")
            res["scale"] = await bench.scale()
        if args.profile:
            _log("profiling the worker with py-spy ...")
            args.profile.mkdir(parents=True, exist_ok=True)
            res["profile"] = await bench.profile(topic, n, args.profile)
            per = res["profile"].get("python_cpu_us_per_event")
            if per:
                for entry in (*res["profile"]["self"], *res["profile"]["inclusive"],
                              *res["profile"]["stages"]):
                    entry["python_cpu_us_per_event"] = round(entry["pct"] / 100 * per, 2)
    finally:
        broker.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    res["meta"]["load_end"] = round(os.getloadavg()[0], 2)
    res["meta"]["total_seconds"] = round(time.monotonic() - started, 1)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    res = asyncio.run(run(args))
    print(render(res), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    ok = all(r["status"] != "failed" for r in res.get("throughput", [])
             if r["key"] != "socialpulse_eos")
    return 0 if ok else 1
