"""One account's state in one place (issue #12), on a real broker with real worker processes.

1. Record keys: 30 % of the records come from a round-robin producer with a null key, so one
   account's events are spread over every partition. Each is forwarded through the repartition
   topic to its account's home partition; a SIGKILL partway tests the hop's exactly-once rules
   (a forward repeated after the crash counts once). Every series must equal the oracle, which
   applies forwarded records in their home with the home's clock; once committed, the forwarded
   records are deleted from the repartition topic.
2. Caps over a deployment: two workers in one group, four account slots for three partitions
   (2 + 1 + 1). Together they export at most four accounts (before, each worker admitted four
   of its own), overflowed mentions stay in their market's share of voice, and every admitted
   account's series equals the oracle's.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.tools.local_kafka import free_port
from streams.tools.preflight import ensure_topics
from tests.support import eventset, oracle
from tests.support.harness import (
    EVENT_COUNTS,
    _check,
    _expected,
    _records,
    _scrape,
    _settings,
    _wait_caught_up,
    committed_offsets,
)
from tests.support.processes import Broker, WorkerProc, new_worker

pytestmark = pytest.mark.integration

NULL_KEYS = 0.3
# Spread over 5 minutes of event time, well inside the retention (20 minutes + grace): no record
# is near the late edge in any order the worker may meet them in (tests/support/oracle.py).
SPAN_S = 300


async def _produce_round_robin(
    env: dict[str, str], records: list[eventset.TestRecord], null_keys: float, seed: int = 11,
) -> int:
    """Keyed records as Kafka's default partitioner places them; ``null_keys`` of the valid
    ones (and every malformed one) without a key, round robin over the partitions, as a
    producer that sets no key does. Returns how many valid records went without a key."""
    s = _settings(env)
    await ensure_topics(s)
    pick = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await producer.start()
    unkeyed = 0
    try:
        batch = []
        for i, r in enumerate(records):
            if r.key is None or pick.random() < null_keys:
                unkeyed += r.key is not None
                batch.append(await producer.send(s.input_topic, r.value, key=None,
                                                 partition=i % s.topic_partitions))
            else:
                batch.append(await producer.send(s.input_topic, r.value, key=r.key))
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    return unkeyed


async def _repartition_offsets(
    bootstrap: str, topic: str, group: str
) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition of ``topic`` with a commit: its first offset, and the committed offset."""
    committed = {p: off for p, off in (await committed_offsets(bootstrap, group, topic)).items()
                 if off > 0}
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        firsts = await reader.beginning_offsets([TopicPartition(topic, p) for p in committed])
    finally:
        await reader.stop()
    return {tp.partition: off for tp, off in firsts.items()}, committed


def test_null_keys_are_rekeyed_and_equal_the_oracle_across_a_crash(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path
) -> None:
    env = {**worker_env, "SOCIALPULSE_REPARTITION_PURGE_SECONDS": "1"}
    records = _records(span_s=SPAN_S)
    unkeyed = asyncio.run(_produce_round_robin(env, records, NULL_KEYS))
    assert unkeyed > 0.25 * len(records)
    w = new_worker(env, tmp_path).start()
    workers.append(w)
    w.wait_ready()
    # Partway: some forwards written and applied, others not yet.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, h = _scrape(w)
        if h.get("socialpulse_records_repartitioned_total", 0) > 0 and \
                h.get("socialpulse_records_consumed_total", 0) > len(records) // 3:
            break
        time.sleep(0.2)
    _, h = _scrape(w)
    assert h["socialpulse_records_repartitioned_total"] > 0
    w.kill()
    w2 = new_worker(env, tmp_path, name="w2").start()
    workers.append(w2)
    w2.wait_ready()
    _check(w2, env, kafka, len(records), one_process=False)
    _, expected = _expected(env, kafka)
    # Every valid record read outside its home was forwarded: about two thirds of the unkeyed.
    assert expected.forwarded > 0.15 * len(records)
    # Applied and committed: the repartition topic deletes them (kept without a time limit).
    s = _settings(env)
    deadline = time.monotonic() + 60
    while True:
        starts, committed = asyncio.run(_repartition_offsets(s.kafka_bootstrap_servers,
                                                             s.repartition_topic, s.app_id))
        if committed and all(starts[p] == off for p, off in committed.items()):
            break
        assert time.monotonic() < deadline, (starts, committed)
        time.sleep(1)
    assert sum(committed.values()) >= expected.forwarded


def test_two_workers_export_at_most_the_account_cap(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path
) -> None:
    accounts = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
                "tyrell", "cyberdyne", "soylent", "aperture"]
    env = {**worker_env, "SOCIALPULSE_MAX_ACCOUNTS": "4",
           "SOCIALPULSE_MARKETS": ",".join(f"{a}=coffee" for a in accounts)}
    records = [r for r in _records(span_s=SPAN_S) if r.key is not None]
    spread = []
    for i, r in enumerate(records):  # the same traffic, over twelve accounts
        ev = orjson.loads(r.value)
        ev["account"] = accounts[i % len(accounts)]
        spread.append(eventset.TestRecord(ev["account"].encode(), orjson.dumps(ev)))
    asyncio.run(_produce_round_robin(env, spread, null_keys=0.0))
    w1 = new_worker(env, tmp_path, name="w1").start()
    w2 = new_worker(env, tmp_path, name="w2",
                    SOCIALPULSE_WEB_PORT=str(free_port()),  # not port + 1: that may be taken
                    SOCIALPULSE_DATA_DIR=str(tmp_path / "worker2")).start()
    workers.extend([w1, w2])
    w1.wait_ready()
    w2.wait_ready()
    owners: list[list[int]] = []
    live: list[dict[str, dict[tuple[str, ...], float]]] = []
    deadline = time.monotonic() + 180
    while True:  # both own partitions (a rebalance may move them while they start)
        for w in (w1, w2):
            _wait_caught_up(w, len(spread), partitions=None)
        status = [orjson.loads(w.get("/status")) for w in (w1, w2)]
        owners = [st["partitions"] for st in status]
        if all(owners) and sorted(p for o in owners for p in o) == [0, 1, 2]:
            break
        assert time.monotonic() < deadline, f"partitions never split: {owners}"
        time.sleep(1)
    time.sleep(3)  # share of voice crosses workers through the market topic
    live = [_scrape(w)[0] for w in (w1, w2)]
    exported = {labels[0] for kpis in live for labels in kpis.get("social_impressions", {})}
    admitted = exported - {"_other"}
    assert len(admitted) <= 4 and "_other" in exported, exported
    _, expected = _expected(env, kafka, owners=owners)
    assert {labels[0] for labels in expected.series["social_impressions"]} == exported
    # Every admitted account's series (share of voice over its whole market included) equals
    # the oracle's; "_other" is exported by both workers, each for its partitions: it adds up.
    merged: dict[str, dict[tuple[str, ...], float]] = {}
    for kpis in live:
        for name, rows in kpis.items():
            for labels, v in rows.items():
                target = merged.setdefault(name, {})
                if labels[0] == "_other":
                    if name in EVENT_COUNTS and labels[2] == "20m":
                        target[labels] = target.get(labels, 0.0) + v
                    continue
                assert labels not in target, f"{name}{labels} exported twice"
                target[labels] = v
    wanted = {name: {k: v for k, v in rows.items()
                     if k[0] != "_other" or (name in EVENT_COUNTS and k[2] == "20m")}
              for name, rows in expected.series.items()}
    problems = oracle.compare(wanted, merged)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])
    sov = expected.series["social_share_of_voice_ratio"]
    assert 0 < sum(v for k, v in sov.items() if k[1] == "all" and k[2] == "20m") < 1
