"""Processes the suites drive: the session's Kafka broker handle and ``socialpulse worker``
processes, plus the suite size (reduced in the test command, full under ``scripts/reliability``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams.worker.watchdog import EXIT_STALLED, RECOVERY

ROOT = Path(__file__).resolve().parents[2]

# The reliability suite has two sizes: the reduced one runs in scripts/test; scripts/reliability
# sets this to run the full-size faults of issue #5 (10 kills over 200,000 events, ...).
FULL = os.environ.get("SOCIALPULSE_FULL_SUITE") == "1"


def scale(reduced: int, full: int) -> int:
    """The reduced size in the test command, the full one under ``scripts/reliability``."""
    return full if FULL else reduced


Figure = Callable[..., None]


@dataclass
class Broker:
    bootstrap: str
    data_dir: Path


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
            [sys.executable, "-m", "streams.tools.cli", "worker"], env=self.env, cwd=ROOT,
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

    def assert_running(self, restarts: int = 2) -> None:
        """Fails if the worker exited, unless it stopped itself because its table recovery read
        nothing (``EXIT_STALLED``, faust's recovery hang,
        https://github.com/faust-streaming/faust/issues/155): that one is started again, at most
        ``restarts`` times, as its supervisor (Kubernetes, ``socialpulse up``) would."""
        if self.proc is None or self.proc.poll() is None:
            return
        if (self.proc.returncode == EXIT_STALLED and len(self.history) <= restarts
                and f"({RECOVERY} partitions" in self.tail(20)):
            self.start()
            return
        raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def new_worker(
    env: dict[str, str], tmp_path: Path, name: str = "w1", **overrides: str
) -> WorkerProc:
    e = {**env, **overrides}
    w = WorkerProc(env=e, log=tmp_path / f"{name}.log")
    w.port = int(e["SOCIALPULSE_WEB_PORT"])
    return w
