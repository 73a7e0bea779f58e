"""The ``socialpulse`` command: worker, local Kafka, produce, simulate, the ``up`` demo, and
``report`` (``streams.report``).

Commands that talk to Kafka check the broker first and fail with one clear line and exit code 2
when it is not there, rather than a client retrying forever.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.settings import Settings, load
from streams.tools.preflight import (
    EXIT_UNAVAILABLE,
    CliError,
    ensure_topics,
    require_broker,
    start_local_kafka,
)

if TYPE_CHECKING:
    from streams.core.schedule import BusinessSchedules

# --- commands -----------------------------------------------------------------------------------
def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    require_broker(settings)
    asyncio.run(ensure_topics(settings))
    logging.basicConfig(level=settings.log_level)
    # aiokafka builds a debug record for every produced message when DEBUG leaks in from a
    # handler setup; the changelog writes would pay for it on every flush.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLogger().level))
    from streams.worker.logs import quiet_coordinator_startup

    quiet_coordinator_startup(logging.getLogger().getEffectiveLevel())
    from faust.worker import Worker

    from streams.worker.app import app

    app.discover()
    # The worker holds millions of long-lived containers (buckets, the dedup index) and makes
    # short-lived ones per event; CPython's default thresholds (700, 10, 10) rescan the old ones
    # so often that collection took about as much CPU as the KPI arithmetic. What exists now
    # (modules, the app) is frozen out of collection; the young generation is collected less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    worker = Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    from streams.tools import local_kafka as kafka_local

    if args.action == "start":
        if not start_local_kafka(settings):
            print(f"Kafka already answers at {settings.kafka_bootstrap_servers}; nothing started")
        return 0
    if args.action == "stop":
        stopped = kafka_local.stop(settings.kafka_data_dir)
        print("stopped" if stopped else "not running")
        return 0
    running = kafka_local.status(settings.kafka_data_dir)
    if running is None:
        print("not running")
        return 1
    print(f"running at {running.bootstrap} (pid {running.pid}, log {running.log_file})")
    return 0


def _progress_printer(total: int | None) -> Any:
    last = [0.0]

    def show(n: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 and sys.stderr.isatty():
            last[0] = now
            suffix = f"/{total}" if total else ""
            sys.stderr.write(f"\r  produced {n:,}{suffix}")
            sys.stderr.flush()

    return show


def cmd_produce(settings: Settings, args: argparse.Namespace) -> int:
    from streams.tools.produce import produce_events, read_jsonl

    require_broker(settings)
    summary = asyncio.run(produce_events(
        settings, read_jsonl(args.file), topic=args.topic, rate=args.rate,
        progress=_progress_printer(None),
    ))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(summary)
    return 0 if summary.errors == 0 else 1


def simulator_for(args: argparse.Namespace, settings: Settings,
                  business_hours: BusinessSchedules | None = None,
                  scenario_after_s: float | None = None) -> Any:
    """The simulator of ``simulate`` and ``up``: in the worker's markets, its care teams
    working the business hours the worker reads (``business_hours``, else the settings')."""
    from streams.tools.simulate import SimulationConfig, Simulator

    names = SimulationConfig(extra_accounts=args.extra_accounts).account_names()
    after = args.scenario_after if scenario_after_s is None else scenario_after_s
    return Simulator(SimulationConfig(
        seed=args.seed, scenario=args.scenario, extra_accounts=args.extra_accounts,
        scenario_after_s=after or 0.0,
        account_markets={a: settings.market_of(a) for a in names},
        business_hours=settings.business_hours if business_hours is None else business_hours,
    ))


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from streams.tools.produce import simulate_live

    require_broker(settings)
    asyncio.run(ensure_topics(settings))
    try:
        summary = asyncio.run(simulate_live(
            settings, simulator_for(args, settings), rate=args.rate, duration_s=args.duration,
            topic=args.topic,
        ))
    except KeyboardInterrupt:
        return 130
    print(summary)
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """The demo (``streams.tools.demo``): Kafka, a worker, the simulator, Prometheus and
    Alertmanager, and a live view; every way out stops all of it."""
    from streams.tools.demo.command import run

    return run(settings, args)


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from streams.report.command import run

    return run(settings, args)


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    from streams.tools.history import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="socialpulse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker (faust)")
    kafka = sub.add_parser("kafka", help="the embedded single-node Kafka (KRaft)")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    produce = sub.add_parser("produce", help="produce JSONL events from a file or - (stdin)")
    produce.add_argument("file")
    produce.add_argument("--topic", default=None)
    produce.add_argument("--rate", type=float, default=None, help="records per second")
    for name, helptext in (("simulate", "produce realistic live traffic"),
                           ("up", "demo: local Kafka + worker + simulator")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--rate", type=float, default=200.0, help="events per second")
        p.add_argument("--scenario", default="normal",
                       choices=["normal", "engagement-drop", "slow-replies", "bad-input"])
        p.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--extra-accounts", type=int, default=0)
        p.add_argument("--scenario-after", type=float, default=None, metavar="SECONDS",
                       help="normal traffic before the scenario starts (default: 0; with the "
                            "demo's Prometheus, 150 s for the rules' baselines)")
        if name == "simulate":
            p.add_argument("--topic", default=None)
        else:
            from streams.tools.demo.command import add_arguments as add_up_arguments

            add_up_arguments(p)
    from streams.report.command import add_arguments

    add_arguments(sub.add_parser(
        "report", help="an HTML and PDF report of an account from Prometheus's history"))
    history = sub.add_parser(
        "history", help="weeks of simulated history in a Prometheus TSDB (for reports)")
    history.add_argument("--out", type=Path, default=Path("var/history/tsdb"),
                         help="the TSDB directory to create (must not exist)")
    history.add_argument("--days", type=float, default=14.0)
    history.add_argument("--end", default=None, help="where it ends (default: now, UTC)")
    history.add_argument("--scrape", type=float, default=900.0,
                         help="seconds of simulated time between two scrapes")
    history.add_argument("--rate", type=float, default=1.0, help="events per simulated second")
    history.add_argument("--seed", type=int, default=42)
    return parser


COMMANDS = {"worker": cmd_worker, "kafka": cmd_kafka, "produce": cmd_produce,
            "simulate": cmd_simulate, "up": cmd_up, "report": cmd_report,
            "history": cmd_history}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        settings = load()
    except ValidationError as exc:
        # One line per bad variable, without the value given: it may be a secret.
        for err in exc.errors(include_input=False, include_url=False):
            field = str(err["loc"][0]) if err["loc"] else "?"
            print(f"socialpulse: SOCIALPULSE_{field.upper()}: {err['msg']}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        return COMMANDS[args.command](settings, args)
    except CliError as exc:
        print(f"socialpulse: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from streams.tools.produce import KafkaUnavailable

        if isinstance(exc, KafkaUnavailable):
            print(f"socialpulse: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        raise


if __name__ == "__main__":
    sys.exit(main())
