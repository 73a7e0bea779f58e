"""Pipeline (3): a real socialpulse worker process (``python -m streams.tools.cli worker``).

Configured only through its ``SOCIALPULSE_*`` environment, as users configure it: its own app id
(so a fresh consumer group and fresh changelog topics), the bench's topic, event-time clock and the
full KPI catalogue (default windows). ``Worker`` starts it, reads ``/metrics`` and stops it with
SIGTERM, collecting its rusage with ``wait4``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.kafka import free_port
from bench.procs import ROOT, Usage, tail, terminate

HEALTH_KEYS = (
    "socialpulse_records_consumed_total",
    "socialpulse_consumer_lag_records",
    "socialpulse_unflushed_records",
    "socialpulse_events_late_total",
    "socialpulse_events_duplicate_total",
    "socialpulse_exported_accounts",
)


@dataclass(frozen=True, slots=True)
class Scrape:
    """One ``/metrics`` response: wall time of the GET, size, sample lines, health values."""

    started: float
    seconds: float
    size: int
    series: int
    kpi_series: int
    health: dict[str, float]
    text: str


def parse_scrape(text: str, started: float, seconds: float, size: int) -> Scrape:
    series = kpi = 0
    health: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        series += 1
        if line.startswith("social_"):
            kpi += 1
        elif line.startswith("socialpulse_"):
            name, _, value = line.rpartition(" ")
            if name in HEALTH_KEYS:
                health[name] = float(value)
    return Scrape(started, seconds, size, series, kpi, health, text)


def code_fingerprint() -> str:
    """Short hash of the worker's own code (streams/, agents/, schemas/) as a process would
    import it now: the code may change between two runs of one benchmark."""
    h = hashlib.sha1()
    for pkg in ("streams", "agents", "schemas"):
        for path in sorted((ROOT / pkg).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:10]


class Worker:
    """One socialpulse worker process on the bench's broker and topic."""

    def __init__(
        self, *, bootstrap: str, topic: str, partitions: int, workdir: Path, name: str,
        guarantee: str = "at_least_once", extra_env: dict[str, str] | None = None,
        app_id: str | None = None, port: int | None = None,
    ) -> None:
        """``app_id`` and ``port``: those of an earlier worker, to take over its state."""
        self.name = name
        self.port = port or free_port()
        self.app_id = app_id or f"bench-{name}-{uuid.uuid4().hex[:8]}"
        self.topic = topic
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / "worker.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALPULSE_")}
        env.update({
            "SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SOCIALPULSE_APP_ID": self.app_id,
            "SOCIALPULSE_INPUT_TOPIC": topic,
            "SOCIALPULSE_DLQ_TOPIC": f"{topic}.dlq.{self.app_id}",
            "SOCIALPULSE_TOPIC_PARTITIONS": str(partitions),
            "SOCIALPULSE_DATA_DIR": str(self.workdir / "data"),
            "SOCIALPULSE_WEB_PORT": str(self.port),
            "SOCIALPULSE_CLOCK": "event",
            "SOCIALPULSE_PROCESSING_GUARANTEE": guarantee,
            "SOCIALPULSE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        })
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.usage: Usage | None = None
        self.code = ""

    @property
    def group(self) -> str:
        """faust's consumer group id: the app id."""
        return self.app_id

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        self.code = code_fingerprint()
        with self.log.open("ab") as out:
            # cwd is the worker's own directory: no stray .env or var/ of the work tree.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.tools.cli", "worker"], env=self.env,
                cwd=self.workdir,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.ps = psutil.Process(self.proc.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 120.0) -> tuple[bytes, float, float]:
        """(body, started, seconds) of a GET to the worker's web server."""
        started = time.time()
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as resp:
            body = resp.read()
        return bytes(body), started, time.perf_counter() - t0

    def scrape(self, timeout: float = 300.0) -> Scrape:
        body, started, seconds = self.get("/metrics", timeout)
        return parse_scrape(body.decode(), started, seconds, len(body))

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds until the web server answers (faust serves it after table recovery)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                raise RuntimeError(f"worker {self.name} exited:\n{tail(self.log)}")
            try:
                self.get("/", timeout=2.0)
                return time.monotonic() - t0
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not serving after {timeout}s:\n{tail(self.log)}")

    def cpu(self) -> float:
        """CPU seconds (user + system, all threads) the worker has used so far."""
        assert self.ps is not None
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss_mib(self) -> float:
        assert self.ps is not None
        return float(self.ps.memory_info().rss) / 2**20

    def stop(self, grace: float = 30.0) -> Usage | None:
        if self.proc is not None and self.usage is None:
            self.usage = terminate(self.proc, grace)
        return self.usage
