"""Fault 4 of issue #5: the broker dies mid-stream and comes back; the worker resumes on its own
(no restart of its own) and stays exact. Figure: time to resume."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.tools import local_kafka as kafka_local
from tests.support.harness import _check, _produce, _records, _scrape, _wait_caught_up
from tests.support.processes import Broker, Figure, WorkerProc, new_worker, scale

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

EVENTS = scale(6_000, 200_000)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[Broker, int, int]]:
    """A broker of this test's own: killing it must not disturb the rest of the suite."""
    defaults = Settings()
    port, controller = kafka_local.free_port(), kafka_local.free_port()
    data_dir = tmp_path / "kafka"
    b = kafka_local.start(data_dir=data_dir, port=port, controller_port=controller,
                          version=defaults.kafka_version, cache_dir=defaults.kafka_cache_dir,
                          heap="512m")
    try:
        yield Broker(b.bootstrap, data_dir), port, controller
    finally:
        kafka_local.stop(data_dir)


def _health(w: WorkerProc) -> dict[str, float]:
    try:
        return _scrape(w)[1]
    except OSError:
        return {}


def test_worker_resumes_after_broker_restart(
    own_broker: tuple[Broker, int, int], worker_env: dict[str, str],
    workers: list[WorkerProc], tmp_path: Path, figure: Figure,
) -> None:
    """The broker is SIGKILLed while the worker is still working through the first half of the
    input (state unflushed, fetches in flight), restarted a few seconds later, and the second
    half is produced: the same worker process writes its state again and catches up."""
    fault = f"4. broker killed and restarted mid-stream, {EVENTS:,} events"
    broker, port, controller = own_broker
    env = {**worker_env, "SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    records = _records(EVENTS, span_s=900)
    half = len(records) // 2
    _produce(env, records[:half])
    w = new_worker(env, tmp_path).start()
    workers.append(w)
    w.wait_ready()
    # Kill it once the worker is a third of the way through (or done, on a fast machine).
    deadline = time.monotonic() + max(120.0, half / 200)
    while time.monotonic() < deadline:
        h = _health(w)
        if h.get("socialpulse_records_consumed_total", 0) >= half / 3:
            break
        time.sleep(0.1)
    consumed_at_kill = int(h.get("socialpulse_records_consumed_total", 0))

    assert kafka_local.kill(broker.data_dir)
    time.sleep(3)  # the worker sees the broker gone: fetches and flushes fail meanwhile
    flushes_before = _health(w).get("socialpulse_flushes_total", 0)
    defaults = Settings()
    kafka_local.start(data_dir=broker.data_dir, port=port, controller_port=controller,
                      version=defaults.kafka_version, cache_dir=defaults.kafka_cache_dir,
                      heap="512m")
    restarted = time.monotonic()
    errors: list[BaseException] = []

    def second_half() -> None:
        try:
            _produce(env, records[half:])
        except BaseException as exc:
            errors.append(exc)

    feeder = threading.Thread(target=second_half, daemon=True)
    feeder.start()
    # Resumed: a flush (state and dead letters written, records acked) succeeded again.
    resume = None
    deadline = time.monotonic() + 300
    while resume is None and time.monotonic() < deadline:
        if _health(w).get("socialpulse_flushes_total", 0) > flushes_before:
            resume = time.monotonic() - restarted
        else:
            time.sleep(0.2)
    assert resume is not None, f"no flush succeeded after the broker came back:\n{w.tail()}"
    feeder.join(timeout=600)
    assert not errors, errors
    _wait_caught_up(w, len(records))
    caught_up = time.monotonic() - restarted
    assert w.proc is not None and w.proc.poll() is None, "the worker must not have exited"
    figure(fault, "records consumed when the broker died", f"{consumed_at_kill:,} of {half:,}")
    figure(fault, "time to resume (broker back to the first successful flush)",
           round(resume, 1), "s")
    figure(fault, "broker back to caught up with all input", round(caught_up, 1), "s")
    _check(w, env, broker, len(records), one_process=False)
