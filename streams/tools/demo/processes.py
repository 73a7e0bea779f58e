"""The demo's child processes, and every way out of ``up`` stopping all of them.

Each child runs in a session of its own, so that a signal for the terminal (Ctrl-C, or SIGHUP when
the terminal closes) reaches ``up`` only, and ``up`` stops its children in the reverse order of
their start: SIGTERM, then SIGKILL after a grace period. SIGHUP and SIGTERM to ``up`` raise
:class:`Interrupted` (a ``KeyboardInterrupt``), so they take the same path as Ctrl-C; during the
clean-up they are ignored, and output to a terminal that is gone is dropped rather than raised.
On Linux a child also gets SIGTERM if ``up`` itself is killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

#: prctl(2) option: the signal a process gets when its parent thread exits.
PR_SET_PDEATHSIG = 1
#: The signals that end ``up`` as Ctrl-C does.
STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGHUP or SIGTERM arrived: stop as for Ctrl-C."""


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGHUP and SIGTERM raise :class:`Interrupted` in the main thread while inside."""
    previous = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_stop_signals() -> None:
    """For the clean-up: a second signal must not cut it short (Ctrl-C included)."""
    for s in (*STOP_SIGNALS, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)


def say(text: str) -> None:
    """Print a line; a terminal that has gone away (SIGHUP) is not an error of the clean-up."""
    with contextlib.suppress(OSError, ValueError):
        print(text, flush=True)


# Loaded here, not in the child: between fork and exec only the prctl call itself runs.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One started process with its log file."""

    name: str
    argv: Sequence[str]
    log: Path
    env: dict[str, str] | None = None
    stop_timeout_s: float = 20.0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True, preexec_fn=_die_with_parent,
            )
        return self.proc

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; waits for the exit either way."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Children:
    """What ``up`` started, stopped last-started first; ``on_stop`` callbacks (the local Kafka)
    take their place in that order."""

    stoppers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def add(self, child: Child) -> Child:
        self.stoppers.append((child.name, child.stop))
        return child

    def on_stop(self, name: str, stop: Callable[[], None]) -> None:
        self.stoppers.append((name, stop))

    def stop_all(self) -> None:
        while self.stoppers:
            name, stop = self.stoppers.pop()
            try:
                stop()
            except Exception as exc:  # one failed stop must not leave the others running
                say(f"stopping {name} failed: {exc!r}")
