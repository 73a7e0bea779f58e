"""The broker dies mid-stream and comes back: the worker resumes on its own and stays exact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams import kafka_local
from streams.settings import Settings
from tests.conftest import Broker, WorkerProc, new_worker
from tests.integration.test_worker_oracle import _check, _produce, _records, _wait_caught_up

pytestmark = pytest.mark.integration


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


def test_worker_resumes_after_broker_restart(
    own_broker: tuple[Broker, int, int], worker_env: dict[str, str],
    workers: list[WorkerProc], tmp_path: Path,
) -> None:
    broker, port, controller = own_broker
    env = {**worker_env, "SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    records = _records()
    half = len(records) // 2
    _produce(env, records[:half])
    w = new_worker(env, tmp_path).start()
    workers.append(w)
    w.wait_ready()
    _wait_caught_up(w, half)

    assert kafka_local.kill(broker.data_dir)
    time.sleep(3)  # the worker sees the broker gone: fetches and flushes fail meanwhile
    defaults = Settings()
    kafka_local.start(data_dir=broker.data_dir, port=port, controller_port=controller,
                      version=defaults.kafka_version, cache_dir=defaults.kafka_cache_dir,
                      heap="512m")
    restarted = time.monotonic()
    _produce(env, records[half:])
    _wait_caught_up(w, len(records), timeout=180)
    resume_seconds = time.monotonic() - restarted
    assert w.proc is not None and w.proc.poll() is None, "the worker must not have exited"
    print(f"\nworker caught up {resume_seconds:.1f} s after the broker came back")
    _check(w, env, broker, len(records), one_process=False)
