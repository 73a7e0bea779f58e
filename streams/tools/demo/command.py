"""``socialpulse up``: start the demo, show it live, and stop all of it however it ends.

In order: the local Kafka (unless one answers already), the worker (its own app id when the demo
adds the rules' ``1m`` window to the configured ones: a worker's state refuses a changed window
set), Alertmanager and Prometheus (unless ``--no-prometheus``), then the simulator and the view
until the duration ends, Ctrl-C, SIGHUP or SIGTERM, or the worker dies. The children's output goes
to log files under ``SOCIALPULSE_DEMO_DIR`` (the view owns the terminal); the view shows their
addresses, and the worker's last warning or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streams.settings import Settings, read_business_hours
from streams.tools.demo import monitoring
from streams.tools.demo.probe import Probe
from streams.tools.demo.processes import (
    Child,
    Children,
    ignore_stop_signals,
    say,
    stop_signals_interrupt,
)
from streams.tools.demo.view import DemoInfo, plain_lines, screen
from streams.tools.preflight import CliError, ensure_topics, require_broker, start_local_kafka

if TYPE_CHECKING:
    from streams.core.schedule import BusinessSchedules
    from streams.tools.simulate import Simulator

# The demo's care teams (``socialpulse up`` without SOCIALPULSE_BUSINESS_HOURS_FILE): the example
# file of the repository, found from this module so that ``up`` works from any directory.
DEMO_BUSINESS_HOURS = (Path(__file__).resolve().parents[3] / "deploy" / "config"
                       / "business-hours.toml")
#: The window of the view's KPIs (the configured shortest when the worker lacks it).
VIEW_WINDOW = "5m"
#: Plain lines (stdout not a terminal) come at most this often.
PLAIN_EVERY_S = 10.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-prometheus", action="store_true",
                   help="leave out the demo's Prometheus and Alertmanager")


def demo_business_hours(settings: Settings) -> tuple[BusinessSchedules, dict[str, str]]:
    """The demo's business hours and the worker environment that names them: the configured
    file if there is one, else the repository's example (when it is there)."""
    if settings.business_hours_file is not None or not DEMO_BUSINESS_HOURS.is_file():
        return settings.business_hours, {}
    try:
        schedules = read_business_hours(DEMO_BUSINESS_HOURS)
    except ValueError as exc:
        raise CliError(f"the demo's business hours: {exc}") from None
    return schedules, {"SOCIALPULSE_BUSINESS_HOURS_FILE": str(DEMO_BUSINESS_HOURS)}


def worker_settings(settings: Settings) -> Settings:
    """The demo worker's settings: the rules' window added to the configured ones, under an app
    id of its own if it was not there (the state of ``app_id`` keeps its windows)."""
    if monitoring.RULE_WINDOW in settings.windows:
        return settings
    return settings.model_copy(update={
        "windows": [monitoring.RULE_WINDOW, *settings.windows],
        "app_id": f"{settings.app_id}-demo",
    })


class DemoWorker:
    """The demo's worker process, restarted when it stops itself as stalled (``EXIT_STALLED``),
    as Kubernetes or systemd would."""

    def __init__(self, settings: Settings, log: Path, extra_env: dict[str, str] | None = None):
        env = {**os.environ, "SOCIALPULSE_CLOCK": settings.clock, **(extra_env or {})}
        env["SOCIALPULSE_APP_ID"] = settings.app_id
        env["SOCIALPULSE_WINDOWS"] = ",".join(settings.windows)
        self.env = env
        self.child = Child("worker", [sys.executable, "-m", "streams.tools.cli", "worker"], log,
                           env=env)

    def start(self) -> int:
        return self.child.start().pid

    def alive(self) -> bool:
        """True while a worker runs; restarts one that exited as stalled."""
        from streams.worker.watchdog import EXIT_STALLED

        proc = self.child.proc
        if proc is None or proc.poll() is None:
            return proc is not None
        if proc.returncode == EXIT_STALLED:
            old, new = proc.pid, self.start()
            say(f"worker {old} stopped itself as stalled; restarted as pid {new}")
            return True
        return False

    def exit_code(self) -> int | None:
        proc = self.child.proc
        return None if proc is None else proc.poll()


@dataclass
class Demo:
    """What ``up`` started, for the live part."""

    settings: Settings
    args: argparse.Namespace
    worker: DemoWorker
    simulator: Simulator
    info: DemoInfo
    accounts: tuple[str, ...]


def run(settings: Settings, args: argparse.Namespace) -> int:
    children = Children()
    with stop_signals_interrupt():
        try:
            _up(settings, args, children)
        except KeyboardInterrupt:
            pass
        finally:
            ignore_stop_signals()
            children.stop_all()
    return 0


def _up(settings: Settings, args: argparse.Namespace, children: Children) -> None:
    from streams.tools import local_kafka as kafka_local

    demo_dir = settings.demo_dir.resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    schedules, hours_env = demo_business_hours(settings)
    mon = None if args.no_prometheus else monitoring.Monitoring(
        demo_dir, settings.demo_prometheus_port, settings.demo_alertmanager_port)
    if mon is not None:
        mon.check_ports()  # before anything starts: one clear line, nothing to clean up

    # Ours to stop if no broker of this data directory ran before (registered before the start,
    # so that an interrupted start is stopped too); not ours if another broker answers already.
    if kafka_local.status(settings.kafka_data_dir) is None:
        def stop_kafka() -> None:
            if kafka_local.stop(settings.kafka_data_dir):
                say("stopped local Kafka")

        children.on_stop("local Kafka", stop_kafka)
        if not start_local_kafka(settings):
            children.stoppers.pop()
    else:
        start_local_kafka(settings)
    ws = worker_settings(settings)
    require_broker(ws)
    asyncio.run(ensure_topics(ws))

    worker = DemoWorker(ws, demo_dir / "worker.log", hours_env)
    children.on_stop("worker", worker.child.stop)
    pid = worker.start()
    base = f"http://{ws.web_host}:{ws.web_port}"
    hours = hours_env.get("SOCIALPULSE_BUSINESS_HOURS_FILE", ws.business_hours_file)
    say(f"worker pid {pid} (app id {ws.app_id}, windows {','.join(ws.windows)})\n"
        f"  metrics: {base}/metrics\n  kpis:    {base}/kpis?account=acme&window=5m\n"
        f"  log:     {worker.child.log}\n"
        f"  business hours: {hours or 'none (every hour counts)'}")

    prometheus = alertmanager = None
    if mon is not None:
        alertmanager = mon.alertmanager()
        children.add(alertmanager.child)
        prometheus = mon.prometheus(f"{ws.web_host}:{ws.web_port}", alertmanager,
                                    ws.response_sla_seconds)
        children.add(prometheus.child)
        alertmanager.wait_ready()
        prometheus.wait_ready()
        say(f"Prometheus:   {prometheus.url} (alerts: {prometheus.url}/alerts; "
            f"rules {mon.directory / 'rules'})\nAlertmanager: {alertmanager.url}")

    after = args.scenario_after
    if after is None:
        after = monitoring.SCENARIO_AFTER_S if mon is not None else 0.0
    from streams.tools.cli import simulator_for

    sim = simulator_for(args, ws, schedules, scenario_after_s=after)
    now = time.time()
    windows = [w.label for w in ws.window_specs]
    info = DemoInfo(
        rate=args.rate, scenario=args.scenario, target=sim.config.target,
        scenario_at=None if args.scenario == "normal" else now + after, started_at=now,
        worker_url=base, worker_log=str(worker.child.log),
        window=VIEW_WINDOW if VIEW_WINDOW in windows else windows[0],
        alert_window=monitoring.RULE_WINDOW if mon is not None else None,
        prometheus_url=prometheus.url if prometheus else None,
        alertmanager_url=alertmanager.url if alertmanager else None,
    )
    say(f"simulating {args.rate:g} events/s ({args.scenario}"
        + (f" from {after:g} s on" if args.scenario != "normal" else "")
        + "); Ctrl-C stops everything")
    demo = Demo(ws, args, worker, sim, info, tuple(sim.accounts[:MAX_ROWS]))
    asyncio.run(_live(demo))
    code = worker.exit_code()
    if code not in (None, 0):
        raise CliError(f"the worker exited with code {code}; see {worker.child.log}")


#: Accounts the view lists (the demo's brands first; generated extra accounts beyond are left out).
MAX_ROWS = 12


async def _live(demo: Demo) -> None:
    """The simulator and the view, until the duration ends, the worker dies or Ctrl-C."""
    from streams.tools.produce import simulate_live

    stop = asyncio.Event()
    probe = Probe(demo.info.worker_url, demo.accounts, demo.info.window,
                  demo.info.alert_window, demo.info.prometheus_url,
                  worker_log=Path(demo.info.worker_log))

    def produced(n: int) -> None:
        probe.produced = n

    async def watch() -> None:
        while demo.worker.alive():
            await asyncio.sleep(0.5)
        stop.set()

    async with probe:
        refresh = demo.settings.demo_refresh_seconds
        tasks = [asyncio.create_task(watch()),
                 asyncio.create_task(_show(demo.info, probe, stop, refresh))]
        try:
            await simulate_live(demo.settings, demo.simulator, rate=demo.args.rate,
                                duration_s=demo.args.duration, stop=stop, progress=produced)
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)


async def _show(info: DemoInfo, probe: Probe, stop: asyncio.Event, refresh: float) -> None:
    """Refresh the view until ``stop``; a rich screen on a terminal, plain lines otherwise."""
    if not sys.stdout.isatty():
        last = 0.0
        while not stop.is_set():
            snap = await probe.snapshot()
            if snap.at - last >= max(PLAIN_EVERY_S, refresh):
                last = snap.at
                say("\n".join(plain_lines(info, snap)))
            await _sleep_until(stop, refresh)
        return
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(screen(info, None), console=console, auto_refresh=False,
              redirect_stdout=False, redirect_stderr=False) as live:
        while not stop.is_set():
            snap = await probe.snapshot()
            live.update(screen(info, snap), refresh=True)
            await _sleep_until(stop, refresh)


async def _sleep_until(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)

