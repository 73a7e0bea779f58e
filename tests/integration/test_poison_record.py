"""One poison record costs only itself (SPEC §5): a record that its producer compressed, far larger
uncompressed than the dead-letter topic accepts, is dead-lettered truncated (headers say so and
give its size), every other record's offsets are committed (the committed lag reaches 0) and the
KPIs equal the oracle's. Before the fix the flush holding its copy failed forever and no offset
of any partition was committed again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.tools.preflight import ensure_topics
from tests.support import eventset, oracle
from tests.support.harness import (
    Progress,
    _produce,
    _read_topic,
    _scrape,
    _settings,
    _wait_caught_up,
    committed_offsets,
    window_end_ms,
)
from tests.support.processes import Broker, Figure, WorkerProc, new_worker

pytestmark = [pytest.mark.integration]

POISON_BYTES = 1_100_000  # over the broker's default max.message.bytes (1 MiB) uncompressed


async def _produce_compressed(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip",
                                max_request_size=4 << 20, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"acme", partition=0)
    finally:
        await producer.stop()


async def _committed_lag(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    committed = await committed_offsets(bootstrap, group, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return sum(ends[tp] - committed.get(tp.partition, 0) for tp in parts)


def test_a_poison_record_costs_only_itself(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path,
    figure: Figure,
) -> None:
    env = {**worker_env, "SOCIALPULSE_CLOCK": "event"}
    s = _settings(env)
    now = int(time.time() * 1000)
    asyncio.run(ensure_topics(s))
    _produce(env, eventset.spread(600, span_s=600, end_ms=now - 5 * 60_000))
    poison = b'{"event_id": "' + b"x" * POISON_BYTES + b'"}'
    asyncio.run(_produce_compressed(kafka.bootstrap, s.input_topic, poison))
    _produce(env, eventset.spread(600, span_s=300, end_ms=now - 2 * 60_000, seed=9))
    inputs = asyncio.run(_read_topic(kafka.bootstrap, s.input_topic, s.topic_partitions))
    produced = len(inputs)

    w = new_worker(env, tmp_path).start()
    workers.append(w)
    w.wait_ready(timeout=300)
    started = time.monotonic()
    _wait_caught_up(w, produced, timeout=120)
    # Committed offsets, as the broker has them: they move while the worker commits, and must
    # reach the end of every partition.
    progress = Progress(60)
    lag = -1
    while not progress.stalled():
        lag = asyncio.run(_committed_lag(kafka.bootstrap, s.app_id, s.input_topic,
                                         s.topic_partitions))
        progress.see(lag)
        if lag == 0:
            break
        time.sleep(1)
    seconds = time.monotonic() - started
    status = w.get("/status").decode()
    assert lag == 0, f"committed lag {lag} after a poison record; /status {status}\n{w.tail()}"

    kpis, health = _scrape(w)
    expected = oracle.run(((p, o, v) for p, o, _k, v, _h in inputs), s, now)
    problems = oracle.compare(expected.series, kpis)
    if window_end_ms(health) != expected.now:
        problems.insert(0, f"window end: worker {window_end_ms(health)} != {expected.now}")
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])
    assert expected.rejected["too_large"] == 1  # the data set has its own few bad records

    dead = asyncio.run(_read_topic(kafka.bootstrap, s.dlq_topic, s.topic_partitions))
    assert len(dead) == sum(expected.rejected.values())  # each once: one worker, no retry
    [copy] = [d for d in dead if d.headers["reason"] == b"too_large"]
    assert copy.headers["truncated"] == b"true"
    assert copy.headers["original_size"] == str(len(poison)).encode()
    assert copy.value == poison[:s.dead_letter_max_bytes]
    assert health["socialpulse_flush_failures_total{stage=write}"] == 0

    figure("poison record", "record (gzip on the input, uncompressed size)", len(poison), "bytes")
    figure("poison record", "committed lag after it", lag, "records")
    figure("poison record", "dead letter stored", len(copy.value), "bytes (truncated)")
    figure("poison record", "caught up and committed after", round(seconds, 1), "s")
