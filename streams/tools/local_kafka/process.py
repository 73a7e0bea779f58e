"""The broker process: the ``java`` command line and JVM options, :func:`start` (write the
configuration, format the storage, launch the detached broker and wait until it serves), the pid
and bootstrap files that let :func:`status` find a running broker again from its data directory,
:func:`stop` (SIGTERM, then SIGKILL) and :func:`kill` (SIGKILL at once), and the failure report,
the first errors and last lines of ``kafka.log``, that a failed start raises with.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .classpath import resolve_classpath
from .config import (
    _PROPS_FILE,
    _default_properties,
    _format_storage,
    _listener_protocol,
    _scram_args,
    _write_logging_config,
    _write_properties,
)
from .network import _answers_metadata, is_reachable

_HEAP_RE = re.compile(r"^\d+[kKmMgG]?$")
_STARTED_LINE = "Kafka Server started"
_PID_FILE = "kafka.pid"
_BOOTSTRAP_FILE = "kafka.bootstrap"
_LOG_FILE = "kafka.log"

# Popen objects of brokers started by this process. Holding them lets us reap an exited broker
# (otherwise it lingers as a zombie and still answers kill(pid, 0)) and keeps CPython from
# warning "subprocess is still running" when the object is garbage-collected.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True, slots=True)
class LocalKafka:
    """A broker started by :func:`start` (or found again by :func:`status`)."""

    bootstrap: str
    pid: int
    data_dir: Path
    log_file: Path


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("`java` is not on PATH: a Kafka broker needs Java 17 or newer")
    return java


def _jvm_args(classpath: Path, heap: str, log4j2: Path, log4j1: Path) -> list[str]:
    return [
        _java(),
        f"-Xms{heap}",
        f"-Xmx{heap}",
        # Serial GC: on 2 cores with a ~0.5 GiB heap its pauses are a few ms, and it has no
        # concurrent GC threads competing with the broker and the workers under test.
        "-XX:+UseSerialGC",
        # Metaspace and code cache otherwise grow to hundreds of MiB of RSS on a busy broker.
        "-XX:MaxMetaspaceSize=128m",
        "-XX:ReservedCodeCacheSize=64m",
        # A broker that ran out of heap is better dead (the log says why) than limping.
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2}",
        f"-Dlog4j.configuration={log4j1.as_uri()}",
        "-cp",
        # The JVM expands the trailing `*` itself; no shell is involved.
        f"{classpath}/*",
    ]


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / _PID_FILE).read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_alive(pid: int, data_dir: Path) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        # poll() also reaps it, so a dead child does not linger as a zombie.
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process under that pid: alive, but not ours
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text(encoding="ascii", errors="replace")
        # Field 3 (after the parenthesised command name) is the state; Z is an exited process
        # that nobody has reaped yet, which kill(pid, 0) still reports as present. A broker whose
        # starter has exited belongs to init, and a container's init may never reap it.
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # no /proc to look in: trust kill(pid, 0)
    # After a reboot or a long gap a stale pid file may name an unrelated process; ours is the
    # one whose command line names this data directory's server.properties.
    return str(data_dir / _PROPS_FILE).encode() in cmdline


def _clear_state(data_dir: Path) -> None:
    for name in (_PID_FILE, _BOOTSTRAP_FILE):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / name).unlink()


def _wait_dead(pid: int, data_dir: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_alive(pid, data_dir):
            return True
        time.sleep(0.1)
    return not _is_alive(pid, data_dir)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def status(data_dir: Path) -> LocalKafka | None:
    """The broker running from ``data_dir``, or None if there is none (by pid liveness)."""
    data_dir = data_dir.absolute()
    pid = _read_pid(data_dir)
    if pid is None or not _is_alive(pid, data_dir):
        return None
    try:
        bootstrap = (data_dir / _BOOTSTRAP_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        bootstrap = ""
    return LocalKafka(
        bootstrap=bootstrap, pid=pid, data_dir=data_dir, log_file=data_dir / _LOG_FILE
    )


def stop(data_dir: Path, timeout: float = 30) -> bool:
    """Stop the broker of ``data_dir`` cleanly (SIGTERM), or by SIGKILL after ``timeout`` s.

    Returns True if a broker was running and is now gone, False if there was none.
    """
    data_dir = data_dir.absolute()
    pid = _read_pid(data_dir)
    if pid is None or not _is_alive(pid, data_dir):
        _clear_state(data_dir)
        return False
    _signal(pid, signal.SIGTERM)
    if not _wait_dead(pid, data_dir, timeout):
        _signal(pid, signal.SIGKILL)
        if not _wait_dead(pid, data_dir, 10):
            raise RuntimeError(f"Kafka broker pid {pid} survived SIGKILL")
    _clear_state(data_dir)
    return True


def kill(data_dir: Path) -> bool:
    """SIGKILL the broker of ``data_dir`` at once (a crash, as tests want); True if one ran."""
    data_dir = data_dir.absolute()
    pid = _read_pid(data_dir)
    if pid is None or not _is_alive(pid, data_dir):
        _clear_state(data_dir)
        return False
    _signal(pid, signal.SIGKILL)
    if not _wait_dead(pid, data_dir, 10):
        raise RuntimeError(f"Kafka broker pid {pid} survived SIGKILL")
    _clear_state(data_dir)
    return True


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _first_errors(text: str, limit: int = 12) -> str:
    # A broker that fails to start logs the cause once and then pages of orderly shutdown, so the
    # tail alone often hides the reason; the first ERROR and "Caused by" lines rarely do.
    hits = [
        line
        for line in text.splitlines()
        if "] ERROR " in line or "] FATAL " in line or line.startswith("Caused by:")
    ]
    return "\n".join(hits[:limit])


def _failure_report(log_file: Path, offset: int) -> str:
    errors = _first_errors(_log_since(log_file, offset))
    head = f"first errors:\n{errors}\n" if errors else ""
    return f"{head}last lines of {log_file}:\n{_tail(log_file)}"


def _log_since(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def start(
    *,
    data_dir: Path,
    port: int,
    controller_port: int,
    version: str,
    cache_dir: Path,
    heap: str = "512m",
    extra_config: dict[str, str] | None = None,
    wait_seconds: float = 90,
    scram_users: Mapping[str, str] | None = None,
    scram_mechanism: str = "SCRAM-SHA-512",
    client_config: Mapping[str, Any] | None = None,
) -> LocalKafka:
    """Start a detached single-node KRaft broker on 127.0.0.1:``port`` and wait until it serves.

    ``extra_config`` adds to or overrides the generated ``server.properties`` (listeners
    included); an empty value removes a default property altogether. Storage is formatted on the
    first start of a data directory and reused afterwards. Raises RuntimeError, with the tail of
    the broker's log, if the broker exits or does not answer within ``wait_seconds``; a broker
    that timed out is killed rather than left behind.

    ``scram_users`` (name -> password) are created with ``scram_mechanism`` when the storage is
    formatted, i.e. on the first start of ``data_dir`` only (see :func:`sasl_ssl_config`).
    ``client_config`` holds the aiokafka client arguments (``security_protocol``, ``ssl_context``,
    ``sasl_*``; a ``bootstrap_servers`` entry is ignored) with which readiness is probed: a
    metadata round trip over the client listener, authenticated, is the only proof that the
    broker serves clients. Without it a non-PLAINTEXT listener is only checked for the started
    log line and a TCP connect.
    """
    if not _HEAP_RE.match(heap):
        raise ValueError(f"heap must look like 512m or 1g: {heap!r}")
    data_dir = data_dir.absolute()
    running = status(data_dir)
    if running is not None:
        raise RuntimeError(f"a Kafka broker (pid {running.pid}) already runs from {data_dir}")
    jars = resolve_classpath(version, cache_dir)

    data_dir.mkdir(parents=True, exist_ok=True)
    props = _default_properties(data_dir, port, controller_port)
    for key, value in (extra_config or {}).items():
        if value == "":
            props.pop(key, None)
        else:
            props[key] = value
    props_file = data_dir / _PROPS_FILE
    _write_properties(props_file, props)
    log4j2, log4j1 = _write_logging_config(data_dir)
    log_file = data_dir / _LOG_FILE
    java_cmd = _jvm_args(jars[0].parent, heap, log4j2, log4j1)

    with log_file.open("a", encoding="utf-8") as log:
        log.write(
            f"\n===== streams.tools.local_kafka: starting Kafka {version} at {time.ctime()} =====\n"
        )
    scram = _scram_args(scram_users or {}, scram_mechanism)
    _format_storage(java_cmd, props, props_file, log_file, scram,
                    secrets=list((scram_users or {}).values()))

    # Only what this start writes counts when looking for the started line: the log is appended
    # to across restarts, and an earlier run's line must not pass for this one's.
    offset = log_file.stat().st_size
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [*java_cmd, "kafka.Kafka", str(props_file)],
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: the broker survives the caller's exit and Ctrl-C in its terminal.
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    bootstrap = f"127.0.0.1:{port}"
    (data_dir / _PID_FILE).write_text(f"{proc.pid}\n", encoding="utf-8")
    (data_dir / _BOOTSTRAP_FILE).write_text(f"{bootstrap}\n", encoding="utf-8")
    broker = LocalKafka(bootstrap=bootstrap, pid=proc.pid, data_dir=data_dir, log_file=log_file)

    # A metadata round trip is the real test of "serves clients", but it needs to speak the
    # listener's protocol: a plaintext client for PLAINTEXT, the caller's client settings for a
    # TLS/SASL listener; without those, the log line plus a TCP connect has to do.
    probe = _listener_protocol(props, port) == "PLAINTEXT" or client_config is not None
    deadline = time.monotonic() + wait_seconds
    started = False
    while True:
        if proc.poll() is not None:
            _CHILDREN.pop(proc.pid, None)
            _clear_state(data_dir)
            raise RuntimeError(
                f"Kafka {version} exited with code {proc.returncode} while starting;\n"
                + _failure_report(log_file, offset)
            )
        started = started or _STARTED_LINE in _log_since(log_file, offset)
        if started and is_reachable(bootstrap, 1.0):
            remaining = max(1.0, deadline - time.monotonic())
            if not probe or _answers_metadata(bootstrap, min(5.0, remaining), client_config):
                return broker
        if time.monotonic() > deadline:
            kill(data_dir)
            raise RuntimeError(
                f"Kafka {version} did not become ready on {bootstrap} within {wait_seconds:.0f}s;\n"
                + _failure_report(log_file, offset)
            )
        time.sleep(0.2)
