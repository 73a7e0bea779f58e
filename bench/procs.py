"""Child processes of the bench and what they cost: CPU and peak RSS from ``wait4``.

Every pipeline runs in its own process, so its peak RSS (``ru_maxrss``) and CPU are its own.
The peer pipelines (``bench.raw_consumer``, ``bench.naive_faust``, ``bench.quix_pipeline``)
measure themselves between their first and last record and print one JSON line, ``ChildReport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH-RESULT "


@dataclass(frozen=True, slots=True)
class Usage:
    """Resource usage of a finished child: CPU seconds (user + system) and peak RSS."""

    cpu_s: float
    maxrss_kib: int

    @property
    def maxrss_mib(self) -> float:
        return self.maxrss_kib / 1024.0


@dataclass
class ChildReport:
    """What a peer pipeline measured in itself, from its first to its last record."""

    records: int
    t_first: float
    t_last: float
    cpu_first: float
    cpu_last: float
    extra: dict[str, Any]

    @classmethod
    def from_line(cls, line: str) -> ChildReport:
        d = json.loads(line[len(RESULT_PREFIX):])
        return cls(d["records"], d["t_first"], d["t_last"], d["cpu_first"], d["cpu_last"],
                   d.get("extra", {}))


def emit_report(records: int, t_first: float, t_last: float, cpu_first: float,
                cpu_last: float, extra: dict[str, Any] | None = None) -> None:
    """Print the one result line a child pipeline owes its parent (then the child may exit)."""
    body = {"records": records, "t_first": t_first, "t_last": t_last, "cpu_first": cpu_first,
            "cpu_last": cpu_last, "extra": extra or {}}
    # Straight to fd 1: faust redirects sys.stdout into its logger.
    os.write(1, f"\n{RESULT_PREFIX}{json.dumps(body)}\n".encode())


def reap(proc: subprocess.Popen[bytes], timeout: float) -> Usage | None:
    """Wait for ``proc`` with ``wait4`` (for its rusage); None if it is still running."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped elsewhere: no rusage to be had
            proc.returncode = proc.returncode if proc.returncode is not None else -1
            return None
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return Usage(ru.ru_utime + ru.ru_stime, int(ru.ru_maxrss))
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def terminate(proc: subprocess.Popen[bytes], grace: float = 30.0) -> Usage | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns the rusage of the child."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        usage = reap(proc, grace)
        if usage is not None or proc.returncode is not None:
            return usage
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    return reap(proc, 10.0)


@dataclass
class ChildRun:
    returncode: int | None
    usage: Usage | None
    report: ChildReport | None
    wall_s: float
    log: Path


async def run_child(
    cmd: list[str], *, log: Path, timeout: float, env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> ChildRun:
    """Run a peer pipeline to completion; its result line is read back from its log."""
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    usage: Usage | None = None
    try:
        while time.monotonic() - started < timeout:
            usage = await asyncio.to_thread(reap, proc, 0.5)
            if proc.returncode is not None:
                break
        else:
            usage = terminate(proc, 5.0)
    except BaseException:
        terminate(proc, 5.0)
        raise
    report = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(RESULT_PREFIX):
            report = ChildReport.from_line(line)
    return ChildRun(proc.returncode, usage, report, time.monotonic() - started, log)


def self_usage() -> tuple[float, int]:
    """(CPU seconds of this whole process, all threads; peak RSS KiB) for a child's own report."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, int(ru.ru_maxrss)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
