"""Shared fixtures: a real single-node Kafka (KRaft) for the session, and worker processes.

The broker is the project's own embedded one (``streams.tools.local_kafka``): jars from Maven
Central in the user cache, one JVM on 127.0.0.1 with free ports. Workers are real ``socialpulse
worker`` processes, configured through the environment exactly as users configure them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streams.settings import Settings
from streams.tools.local_kafka import free_port
from tests.support import eventset
from tests.support.processes import FULL, ROOT, Broker, Figure, WorkerProc


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """Record one row of the Guarantees table: ``figure(fault, name, value, unit="")``.

    Rows are printed (visible with ``-s``) and appended as JSON lines to
    ``$SOCIALPULSE_FIGURES`` when set; ``python -m tests.support.figures FILE`` prints the table.
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


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    from streams.tools import local_kafka as kafka_local

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
        # acme and globex with business hours, the others without; an SLA the traffic passes
        "SOCIALPULSE_BUSINESS_HOURS_FILE": str(eventset.BUSINESS_HOURS),
        "SOCIALPULSE_RESPONSE_SLA_SECONDS": "120",
        "SOCIALPULSE_LOG_LEVEL": "INFO",
        "SOCIALPULSE_FLUSH_INTERVAL_SECONDS": "1",
        # A stall (faust's recovery hang among them) ends in exit code 3 well within the waits
        # of tests/support (nothing moved for 120 s), which restart a worker that stopped for a
        # recovery that read nothing, as its supervisor would.
        "SOCIALPULSE_STALL_WARN_SECONDS": "20",
        "SOCIALPULSE_STALL_EXIT_SECONDS": "60",
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
