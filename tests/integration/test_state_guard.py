"""A worker never reinterprets state or topics that do not fit its settings (SPEC §5): it refuses
to start with one line naming the setting, and exit code 2.

* state built with other windows (bucket keys carry a window's index: 5m state read as 1m, or an
  IndexError at every flush, before the state manifest);
* a state changelog or market topic that exists with another partition count than the input, or
  without compaction.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support import eventset
from tests.support.harness import _produce, _settings, _wait_caught_up
from tests.support.processes import Broker, Figure, WorkerProc, new_worker

pytestmark = [pytest.mark.integration]


def _exit_code(w: WorkerProc, timeout: float) -> int | None:
    """The worker's exit code once it exits, None if it still runs after ``timeout`` seconds
    (a refusal comes right after recovery; a worker that keeps running has not refused)."""
    assert w.proc is not None
    try:
        return w.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _refusal(w: WorkerProc) -> list[str]:
    return [line for line in w.log.read_text(errors="replace").splitlines()
            if "refusing to run" in line or line.startswith("socialpulse: ")]


def _build_state(
    env: dict[str, str], workers: list[WorkerProc], tmp_path: Path
) -> list[eventset.TestRecord]:
    """300 records produced, applied and flushed by a worker that then stops cleanly."""
    records = eventset.spread(300, span_s=300, end_ms=int(time.time() * 1000) - 60_000)
    _produce(env, records)
    first = new_worker(env, tmp_path, "built").start()
    workers.append(first)
    first.wait_ready(timeout=300)
    _wait_caught_up(first, len(records), timeout=120)
    first.kill(signal.SIGTERM)
    return records


def test_state_built_with_other_windows_refuses_to_start(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    figure: Figure,
) -> None:
    records = _build_state(worker_env, workers, tmp_path)

    changed = new_worker(worker_env, tmp_path, "changed",
                         SOCIALPULSE_WINDOWS="1m,5m",
                         SOCIALPULSE_DATA_DIR=str(tmp_path / "other-data")).start()
    workers.append(changed)
    started = time.monotonic()
    code = _exit_code(changed, timeout=120)
    assert code == 2, f"exit code {code}:\n{changed.tail()}"
    lines = _refusal(changed)
    assert len(lines) == 1, lines
    assert "SOCIALPULSE_WINDOWS is 1m,5m but the state of partition" in lines[0]
    assert "was built with 1m,5m,20m" in lines[0]
    figure("windows changed", "refused after", round(time.monotonic() - started, 1), "s")

    again = new_worker(worker_env, tmp_path, "same").start()  # the original settings still work
    workers.append(again)
    again.wait_ready(timeout=300)
    _wait_caught_up(again, len(records), timeout=120)


async def _create(bootstrap: str, topics: list[NewTopic]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(topics)
    finally:
        await admin.close()


@pytest.mark.parametrize("which", ["changelog partitions", "market partitions", "market policy"])
def test_a_topic_that_does_not_fit_the_input_refuses_to_start(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    which: str,
) -> None:
    s = _settings(worker_env)
    compact = {"cleanup.policy": "compact"}
    topic = {
        "changelog partitions": NewTopic(s.changelog_topic, 2, 1, topic_configs=compact),
        "market partitions": NewTopic(s.market_topic, 5, 1, topic_configs=compact),
        "market policy": NewTopic(s.market_topic, s.topic_partitions, 1,
                                  topic_configs={"cleanup.policy": "delete"}),
    }[which]
    asyncio.run(_create(kafka.bootstrap, [topic]))
    w = new_worker(worker_env, tmp_path).start()
    workers.append(w)
    code = _exit_code(w, timeout=120)
    assert code == 2, f"exit code {code}:\n{w.tail()}"
    lines = _refusal(w)
    assert len(lines) == 1 and topic.name in lines[0], lines
    expected = "cleanup.policy=delete" if which == "market policy" else "partitions but the input"
    assert expected in lines[0], lines


async def _delete(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
        for _ in range(60):  # deletion is asynchronous on the broker
            if not set(topics) & set(await admin.list_topics()):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"{topics} still listed a minute after their deletion")
    finally:
        await admin.close()


@pytest.mark.parametrize("recreated", ["input", "changelog"])
def test_a_recreated_topic_under_existing_state_refuses_to_start(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    recreated: str,
) -> None:
    """A recreated input under a changelog that covers its first offsets would skip them as
    replays; a changelog deleted beside committed offsets would restart lifetime KPIs at 0."""
    s = _settings(worker_env)
    now = int(time.time() * 1000)
    records = _build_state(worker_env, workers, tmp_path)
    if recreated == "input":
        asyncio.run(_delete(kafka.bootstrap, [s.input_topic]))
        # As many records as before, other ones: only the record at each mark tells.
        _produce(worker_env, eventset.spread(len(records), span_s=300, end_ms=now, seed=4))
    else:
        asyncio.run(_delete(kafka.bootstrap, [s.changelog_topic]))
    second = new_worker(worker_env, tmp_path, "second",
                        SOCIALPULSE_DATA_DIR=str(tmp_path / "second-data")).start()
    workers.append(second)
    code = _exit_code(second, timeout=120)
    assert code == 2, f"exit code {code}:\n{second.tail()}"
    lines = _refusal(second)
    assert len(lines) == 1, lines
    says = ("not the one the state was built from", "recreated or truncated") \
        if recreated == "input" else ("changelog was deleted",)
    assert any(x in lines[0] for x in says), lines
