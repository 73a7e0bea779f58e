"""The progress watchdog on a real broker: a worker that owns lagging partitions and makes no
progress says so in one line, in ``socialpulse_stalled_seconds`` and on ``GET /ready``, then exits
with code 3 for its supervisor to restart it.

The stall is provoked with the worker's fault hook (``SOCIALPULSE_FAULT_INJECTION``): the fetcher
stops after the first batch (the shape of faust-streaming#629, partitions never fetched again), or
every commit fails (a worker that reads but can no longer commit), or the changelogs of a recovery
are never fetched (faust's recovery hang). The negative side (no false alarm under load, through
recovery, rebalances and a CPU hog) is every other worker of the suite: they all run with the
watchdog on at limits of 20 s and 60 s (``tests/conftest.py``), and one that exited with code 3
would fail its test, unless its recovery read nothing, which the waits of ``tests/support``
answer as a supervisor would, with a restart.
"""

from __future__ import annotations

import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from streams.worker.watchdog import EXIT_STALLED
from tests.support import eventset
from tests.support.harness import _check, _produce, _scrape
from tests.support.processes import Broker, Figure, WorkerProc, new_worker

pytestmark = pytest.mark.integration

WARN_S, EXIT_S = 4, 12


def _ready(w: WorkerProc) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{w.url}/ready", timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _until(what: str, w: WorkerProc, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` is true (the worker's log tail if it never is)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"never {what} within {timeout} s:\n{w.tail()}")


def _the_stall_line(w: WorkerProc) -> str:
    """The worker's line saying it stalled: one clear line, not one per check."""
    lines = [line for line in w.log.read_text(errors="replace").splitlines()
             if "worker stalled:" in line]
    assert len(lines) == 1, lines
    return lines[0]


def _the_next_worker_recovers(
    env: dict[str, str], tmp_path: Path, workers: list[WorkerProc], kafka: Broker,
    produced: int, name: str,
) -> WorkerProc:
    """Its supervisor restarts it: the next worker (no fault) applies and commits everything,
    nothing was lost or counted twice on the way, and it is ready."""
    w = new_worker(env, tmp_path, name).start()
    workers.append(w)
    w.wait_ready()
    _check(w, env, kafka, produced, one_process=False)
    status, body = _ready(w)
    assert status == 200, f"{body}\n{w.tail()}"
    return w


def _stalls(
    env: dict[str, str], tmp_path: Path, workers: list[WorkerProc], fault: str
) -> tuple[WorkerProc, float, int]:
    """A worker with ``fault``, fed a first batch and, once the fault is in place, a second one
    it cannot get through: the worker, when the second input was sent, and records sent."""
    w = new_worker(env, tmp_path, SOCIALPULSE_FAULT_INJECTION=fault,
                   SOCIALPULSE_STALL_WARN_SECONDS=str(WARN_S),
                   SOCIALPULSE_STALL_EXIT_SECONDS=str(EXIT_S)).start()
    workers.append(w)
    w.wait_ready()
    now = int(time.time() * 1000)
    first = eventset.spread(200, span_s=60, end_ms=now - 120_000)
    _produce(env, first)
    _until("applied the first records", w,
           lambda: _scrape(w)[1].get("socialpulse_records_consumed_total", 0) > 0, 120)
    if fault == "stop_fetcher":
        _until("stopped its fetcher", w,
               lambda: "stopping the fetcher" in w.log.read_text(errors="replace"), 60)
    second = eventset.spread(600, span_s=60, end_ms=now - 60_000, seed=8)
    _produce(env, second)
    return w, time.monotonic(), len(first) + len(second)


@pytest.mark.parametrize("fault, half", [("stop_fetcher", "applying"),
                                         ("stop_commits", "committing")])
def test_a_stalled_worker_says_so_then_exits_for_its_supervisor(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    figure: Figure, fault: str, half: str,
) -> None:
    w, lagging_since, produced = _stalls(worker_env, tmp_path, workers, fault)
    assert w.proc is not None

    def stalled() -> bool:
        status, body = _ready(w)
        reasons = body["reasons"]
        return status == 503 and isinstance(reasons, list) and any("stalled" in r for r in reasons)

    warned = _until("failed its readiness probe", w, stalled, 120)
    health = _scrape(w)[1]
    assert health["socialpulse_stalled_seconds"] >= WARN_S
    line = _the_stall_line(w)
    assert half in line and "[ERROR]" in line, line
    code = w.proc.wait(timeout=120)
    exited = time.monotonic() - lagging_since
    assert code == EXIT_STALLED, w.tail()
    assert "exiting with code 3" in w.log.read_text(errors="replace")
    figure("liveness", f"{fault}: second input to /ready 503 (warn limit {WARN_S} s)",
           round(warned, 1), "s")
    figure("liveness", f"{fault}: second input to exit code 3 (exit limit {EXIT_S} s)",
           round(exited, 1), "s")

    w2 = _the_next_worker_recovers(worker_env, tmp_path, workers, kafka, produced, "w2")
    assert _scrape(w2)[1]["socialpulse_stalled_seconds"] == 0


def test_a_worker_taking_over_partitions_with_nothing_new_is_not_stalled(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
) -> None:
    """Its predecessor applied and committed everything: the new owner has committed nothing
    itself, yet nothing is waiting (the group's committed offsets say so)."""
    env = worker_env
    w1 = new_worker(env, tmp_path).start()
    workers.append(w1)
    w1.wait_ready()
    events = eventset.spread(300, span_s=60, end_ms=int(time.time() * 1000) - 60_000)
    _produce(env, events)
    _check(w1, env, kafka, len(events), one_process=True)
    w1.kill(signal.SIGTERM)  # a clean stop: its last flush commits everything
    assert w1.proc is not None and w1.proc.wait(timeout=60) == 0
    warn_s, exit_s = 2, 6  # its own: nothing at all should move
    w2 = new_worker(env, tmp_path, "w2", SOCIALPULSE_STALL_WARN_SECONDS=str(warn_s),
                    SOCIALPULSE_STALL_EXIT_SECONDS=str(exit_s)).start()
    workers.append(w2)
    w2.wait_ready()
    time.sleep(exit_s + 3)  # past both limits
    assert w2.proc is not None and w2.proc.poll() is None, w2.tail()
    status, body = _ready(w2)
    assert status == 200, f"{body}\n{w2.tail()}"
    assert "worker stalled" not in w2.log.read_text(errors="replace")
    _check(w2, env, kafka, len(events), one_process=False)


def test_a_recovery_that_reads_nothing_says_so_then_exits_for_its_supervisor(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    figure: Figure,
) -> None:
    """faust's recovery hang (faust-streaming#155, #21: a changelog partition never fetched,
    "have offset -1", forever): a worker whose recovery reads nothing says so in one line, on
    ``GET /ready`` and in ``socialpulse_stalled_seconds``, then exits with code 3; restarted, it
    recovers the state, and nothing was lost or counted twice."""
    env = worker_env
    w1 = new_worker(env, tmp_path).start()
    workers.append(w1)
    w1.wait_ready()
    events = eventset.spread(300, span_s=60, end_ms=int(time.time() * 1000) - 60_000)
    _produce(env, events)
    _check(w1, env, kafka, len(events), one_process=True)
    w1.kill(signal.SIGTERM)  # its state is in the changelog: the next worker must recover it
    assert w1.proc is not None and w1.proc.wait(timeout=60) == 0

    w2 = new_worker(env, tmp_path, "w2", SOCIALPULSE_FAULT_INJECTION="stop_recovery",
                    SOCIALPULSE_STALL_WARN_SECONDS=str(WARN_S),
                    SOCIALPULSE_STALL_EXIT_SECONDS=str(EXIT_S)).start()
    workers.append(w2)
    started = time.monotonic()
    w2.wait_ready()

    def stalled() -> bool:
        status, body = _ready(w2)
        reasons = body["reasons"]
        return status == 503 and isinstance(reasons, list) \
            and any(r.startswith("stalled") and "recovery" in r for r in reasons)

    _until("said its recovery stalled on /ready", w2, stalled, 120)
    warned = time.monotonic() - started
    assert _scrape(w2)[1]["socialpulse_stalled_seconds"] >= WARN_S
    assert w2.proc is not None
    code = w2.proc.wait(timeout=120)
    exited = time.monotonic() - started
    assert code == EXIT_STALLED, w2.tail()
    line = _the_stall_line(w2)
    assert "no recovery progress" in line and "-changelog/" in line, line
    log = w2.log.read_text(errors="replace")
    assert "(recovery partitions" in log and "exiting with code 3" in log
    figure("liveness", f"stop_recovery: start to /ready 503 stalled (warn limit {WARN_S} s)",
           round(warned, 1), "s")
    figure("liveness", f"stop_recovery: start to exit code 3 (exit limit {EXIT_S} s)",
           round(exited, 1), "s")

    _the_next_worker_recovers(env, tmp_path, workers, kafka, len(events), "w3")
