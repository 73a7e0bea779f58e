"""Shared fixtures: a real single-node Kafka (KRaft) for the session, and worker processes.

The broker is the project's own embedded one (``streams.kafka_local``): jars from Maven Central in
the user cache, one JVM on 127.0.0.1 with free ports. Workers are real ``socialpulse worker``
processes, configured through the environment exactly as users configure them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from streams.kafka_local import free_port
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# The reliability suite has two sizes: the reduced one runs in scripts/test; scripts/reliability
# sets this to run the full-size faults of issue #5 (10 kills over 200,000 events, ...).
FULL = os.environ.get("SOCIALPULSE_FULL_SUITE") == "1"


def scale(reduced: int, full: int) -> int:
    """The reduced size in the test command, the full one under ``scripts/reliability``."""
    return full if FULL else reduced


Figure = Callable[..., None]


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """Record one row of the Guarantees table: ``figure(fault, name, value, unit="")``.

    Rows are printed (visible with ``-s``) and appended as JSON lines to
    ``$SOCIALPULSE_FIGURES`` when set; ``python -m tests.figures FILE`` prints the table.
    """
    path = os.environ.get("SOCIALPULSE_FIGURES")

    def record(fault: str, name: str, value: float | int | str, unit: str = "") -> None:
        row = {"test": request.node.nodeid, "fault": fault, "figure": name, "value": value,
               "unit": unit, "full": FULL}
        print(f"FIGURE {fault} | {name} | {value} {unit}".rstrip())
        if path:
            with open(path, "ab") as f:
                f.write(orjson.dumps(row) + b"\n")

    return record


@dataclass
class Broker:
    bootstrap: str
    data_dir: Path


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    from streams import kafka_local

    defaults = Settings()
    data_dir = tmp_path_factory.mktemp("kafka")
    port, controller = free_port(), free_port()
    broker = kafka_local.start(
        data_dir=data_dir, port=port, controller_port=controller,
        version=defaults.kafka_version, cache_dir=defaults.kafka_cache_dir, heap="768m",
    )
    try:
        yield Broker(broker.bootstrap, data_dir)
    finally:
        kafka_local.stop(data_dir)


@dataclass
class WorkerProc:
    """One ``socialpulse worker`` process and the environment it was started with."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    history: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProc:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], env=self.env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.history.append(self.proc.pid)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metrics(self, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=timeout) as resp:
            return str(resp.read().decode())

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as resp:
            return bytes(resp.read())

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                self.metrics(timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"worker not serving /metrics after {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture
def worker_env(kafka: Broker, tmp_path: Path) -> dict[str, str]:
    """Environment of a worker on its own topics, group and port (tests never share state)."""
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALPULSE_")}
    env.update({
        "SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "SOCIALPULSE_APP_ID": f"sp-test-{run}",
        "SOCIALPULSE_INPUT_TOPIC": f"in-{run}",
        "SOCIALPULSE_DLQ_TOPIC": f"dlq-{run}",
        "SOCIALPULSE_TOPIC_PARTITIONS": "3",
        "SOCIALPULSE_DATA_DIR": str(tmp_path / "worker"),
        "SOCIALPULSE_WEB_PORT": str(free_port()),
        "SOCIALPULSE_CLOCK": "event",
        "SOCIALPULSE_WINDOWS": "1m,5m,20m",
        "SOCIALPULSE_GRACE_SECONDS": "60",
        "SOCIALPULSE_MARKETS": "acme=coffee,globex=coffee",
        "SOCIALPULSE_LOG_LEVEL": "INFO",
        "SOCIALPULSE_FLUSH_INTERVAL_SECONDS": "1",
        "PYTHONPATH": str(ROOT),
    })
    return env


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[list[WorkerProc]]:
    """Factory list: append ``WorkerProc``s; every one is killed at teardown."""
    procs: list[WorkerProc] = []
    yield procs
    for w in procs:
        w.kill()


def new_worker(
    env: dict[str, str], tmp_path: Path, name: str = "w1", **overrides: str
) -> WorkerProc:
    e = {**env, **overrides}
    w = WorkerProc(env=e, log=tmp_path / f"{name}.log")
    w.port = int(e["SOCIALPULSE_WEB_PORT"])
    return w
