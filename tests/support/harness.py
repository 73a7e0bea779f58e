"""Helpers shared by the integration tests: scrape workers, read topics back, check the oracle.

A worker's KPI series are compared with ``tests/support/oracle.py`` run over the input read back
from Kafka (partition and offset included), so the oracle sees exactly what the workers saw.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from streams.core.catalogue import sample_metrics
from streams.settings import Settings
from streams.tools.preflight import ensure_topics
from streams.tools.produce import produce_events
from tests.support import eventset, oracle
from tests.support.processes import Broker, WorkerProc

COUNT = 6_000
LABELS = {name: m.labels for name, m in sample_metrics().items()}

Series = dict[str, dict[tuple[str, ...], float]]


def _settings(env: dict[str, str]) -> Settings:
    keys = {k.removeprefix("SOCIALPULSE_").lower(): v for k, v in env.items()
            if k.startswith("SOCIALPULSE_")}
    return Settings(**keys)  # type: ignore[arg-type]


def _scrape(w: WorkerProc) -> tuple[Series, dict[str, float]]:
    """KPI series as {name: {labels: value}} and health samples as {sample name: total}."""
    kpis: Series = {}
    health: defaultdict[str, float] = defaultdict(float)
    for fam in text_string_to_metric_families(w.metrics()):
        for s in fam.samples:
            if s.name.startswith("social_"):
                order = LABELS[s.name]
                assert set(s.labels) == set(order), (s.name, s.labels)
                kpis.setdefault(s.name, {})[tuple(s.labels[k] for k in order)] = s.value
            else:
                health[s.name] += s.value
                for k, v in s.labels.items():
                    health[f"{s.name}{{{k}={v}}}"] += s.value
    return kpis, health


class Progress:
    """A deadline that moves with progress: ``stalled()`` once what ``see`` was given has not
    changed for ``stall_s`` seconds. Waits on a slow or busy machine last as long as the work
    moves, and one that stopped moving fails in ``stall_s``, not at pytest's timeout."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self.changed = time.monotonic()
        self._last: object = None

    def see(self, state: object) -> None:
        if state != self._last:
            self._last, self.changed = state, time.monotonic()

    def stalled(self) -> bool:
        return time.monotonic() - self.changed > self.stall_s


def _progress_key(h: dict[str, float]) -> tuple[float, ...]:
    return tuple(h.get(k, -1.0) for k in (
        "socialpulse_records_consumed_total", "socialpulse_consumer_lag_records",
        "socialpulse_unflushed_records", "socialpulse_assigned_partitions",
        "socialpulse_flushes_total"))


def _wait_caught_up(
    w: WorkerProc, produced: int, timeout: float = 120.0, *, flushed: bool = True,
    partitions: int | None = 3,
) -> dict[str, float]:
    """Until the worker owns ``partitions`` (None: any), has read every record of them and
    flushed them all, twice in a row. Fails once nothing moved for ``timeout`` seconds (records
    read, lag, unflushed records, partitions, flushes), however long the whole wait took."""
    progress = Progress(timeout)
    settled = 0
    while not progress.stalled():
        w.assert_running()
        try:
            _, h = _scrape(w)
        except OSError:
            time.sleep(0.5)
            continue
        progress.see(_progress_key(h))
        done = (h.get("socialpulse_consumer_lag_records", 1) == 0
                and h.get("socialpulse_assigned_partitions", 0) > 0
                and partitions in (None, h.get("socialpulse_assigned_partitions"))
                and (not flushed or h.get("socialpulse_unflushed_records", 1) == 0))
        settled = settled + 1 if done else 0
        if settled >= 2:
            return h
        time.sleep(0.5)
    raise AssertionError(f"worker did not catch up with {produced} records: nothing moved for "
                         f"{timeout} s:\n{w.tail()}")


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (absent: none committed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        answer = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in answer.items()
            if tp.topic == topic and meta.offset >= 0}


class TopicRecord(NamedTuple):
    """One record read back from a topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


async def _read_topic(
    bootstrap: str, topic: str, partitions: int, timeout: float | None = None
) -> list[TopicRecord]:
    """Every record of ``topic`` from the beginning to the end offsets seen at the start (a
    compacted topic may hold fewer: the read then stops at ``timeout``)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        want = sum(ends[tp] - starts[tp] for tp in parts)
        out: list[TopicRecord] = []
        # A million records take a while to read back on a busy machine.
        deadline = time.monotonic() + (60 + want / 5_000 if timeout is None else timeout)
        while len(out) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            for tp, msgs in batch.items():
                for m in msgs:
                    out.append(TopicRecord(tp.partition, m.offset, m.key, m.value or b"",
                                           {k: v for k, v in m.headers}))
        return out
    finally:
        await consumer.stop()


def _payload(records: Iterable[eventset.TestRecord]) -> Iterator[dict[str, object] | bytes]:
    """What ``produce_events`` sends: dicts are keyed by account, malformed records go as bytes."""
    for r in records:
        yield r.value if r.key is None else orjson.loads(r.value)


def _produce(
    env: dict[str, str], records: list[eventset.TestRecord], *, rate: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    s = _settings(env)
    asyncio.run(ensure_topics(s))
    summary = asyncio.run(produce_events(s, _payload(records), rate=rate, progress=progress))
    assert summary.sent == len(records), summary


def window_end_ms(health: dict[str, float]) -> int | None:
    """The clock of the scraped KPI values (``socialpulse_window_end_timestamp_seconds``)."""
    value = health.get("socialpulse_window_end_timestamp_seconds")
    return None if value is None else round(value * 1000)


def _expected(
    env: dict[str, str], kafka: Broker, owners: list[list[int]] | None = None,
    wall_ms: int | None = None,
) -> tuple[list[TopicRecord], oracle.OracleResult]:
    """The input read back from Kafka, and the oracle's KPIs over it (``owners``: each
    worker's partitions, when several export). ``wall_ms``: the wall clock the oracle stands
    for; with ``clock=wall`` pass the clock of the scrape compared (``window_end_ms``), so both
    sides compute the windows at the same instant."""
    s = _settings(env)
    inputs = asyncio.run(_read_topic(kafka.bootstrap, s.input_topic, s.topic_partitions))
    wall = wall_ms if wall_ms is not None else int(time.time() * 1000)
    expected = oracle.run(((p, o, v) for p, o, _k, v, _h in inputs), s, wall, owners=owners)
    return inputs, expected


def _check(
    w: WorkerProc, env: dict[str, str], kafka: Broker, produced: int, *, one_process: bool,
    report: Callable[[oracle.OracleResult, Series], None] | None = None,
) -> None:
    """The worker is caught up and every series equals the oracle's; ``report`` is called with
    the oracle's result and the live series before anything is asserted (for figures)."""
    s = _settings(env)
    _wait_caught_up(w, produced)
    kpis, health = _scrape(w)
    clock = window_end_ms(health)
    inputs, expected = _expected(env, kafka, wall_ms=clock if s.clock == "wall" else None)
    if report is not None:
        report(expected, kpis)
    assert len(inputs) == produced
    problems = oracle.compare(expected.series, kpis)
    # With the event clock the worker's windows end at its newest event: the same as the
    # oracle's unless the two did not see the same events.
    if s.clock == "event" and clock != expected.now:
        problems.insert(0, f"window end: worker {clock} != oracle {expected.now}")
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])
    if s.clock == "event":  # GET /kpis ends its windows where the scrape did
        problems = oracle.check_top_posts(expected.posts, top_posts_of(w, expected.posts))
        assert not problems, "top posts:\n" + "\n".join(problems[:40])
    if one_process:
        # Health counters live in the process; they agree with the oracle when one saw it all.
        assert health["socialpulse_events_late_total"] == expected.late > 0
        assert health["socialpulse_events_duplicate_total"] == expected.duplicates > 0
        for reason, n in expected.rejected.items():
            assert health[f"socialpulse_events_rejected_total{{reason={reason}}}"] == n
    dead = asyncio.run(_read_topic(kafka.bootstrap, s.dlq_topic, s.topic_partitions))
    by_reason = Counter(h["reason"].decode() for *_x, h in dead)
    # At-least-once into the dead-letter topic: a crash may repeat a record, never lose one.
    for reason, n in expected.rejected.items():
        assert by_reason[reason] >= n, (reason, by_reason)
    originals = {v for _p, _o, _k, v, _h in inputs}
    assert all(v in originals for _p, _o, _k, v, _h in dead)


def top_posts_of(
    w: WorkerProc, posts: dict[tuple[str, str, str], dict[str, int]]
) -> dict[str, dict[str, dict[str, dict[str, object]]]]:
    """``top_posts`` of ``GET /kpis`` for every account ``posts`` names (the owner answers)."""
    return {acc: orjson.loads(w.get(f"/kpis?account={acc}"))["top_posts"]
            for acc in sorted({a for a, _w, _r in posts})}


def _records(
    count: int = COUNT, *, span_s: float | None = None, end_ms: int | None = None, seed: int = 7,
    now_ms: int | None = None,
) -> list[eventset.TestRecord]:
    """Simulated traffic with duplicates, disorder, late and malformed records.

    By default 20 events a second starting 40 minutes before ``now_ms`` (default: the wall clock).
    With ``span_s`` the events are spread over that many seconds of event time ending ``end_ms``
    (default: two minutes before ``now_ms``), whatever their count, so that a run of any size fits
    in one window; late ones are 40 minutes older.
    """
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if span_s is None:
        return eventset.at_rate(now, count, seed=seed)
    end = end_ms if end_ms is not None else now - 120_000
    return eventset.spread(count, span_s=span_s, end_ms=end, seed=seed)


# Exact per-event counts: each valid event of these types adds exactly one to one series per
# (account, platform, window), so the differences to the oracle count lost and doubled events.
EVENT_COUNTS = (
    "social_impressions", "social_likes", "social_comments", "social_shares", "social_saves",
    "social_clicks", "social_mentions", "social_replies", "social_visits", "social_leads",
    "social_orders", "social_reviews",
)


def lost_and_doubled(expected: Series, live: Series, window: str) -> tuple[int, int]:
    """Σ max(0, oracle - live) and Σ max(0, live - oracle) over the per-event counts of one
    window, per account and platform (the ``all`` platform and conversions' ``all`` goal are
    sums of others and left out, so no event is counted twice here)."""
    lost = doubled = 0.0
    names: list[tuple[str, Callable[[tuple[str, ...]], bool]]] = [
        (n, lambda lb: True) for n in EVENT_COUNTS]
    names.append(("social_conversions", lambda lb: lb[3] != "all"))
    for name, keep in names:
        exp, act = expected.get(name, {}), live.get(name, {})
        for labels in exp.keys() | act.keys():
            if labels[1] == "all" or labels[2] != window or not keep(labels):
                continue
            diff = act.get(labels, 0.0) - exp.get(labels, 0.0)
            lost += max(0.0, -diff)
            doubled += max(0.0, diff)
    return int(lost), int(doubled)


def counted_events(expected: Series, window: str) -> int:
    """How many events ``lost_and_doubled`` looks at (the oracle's side)."""
    return lost_and_doubled(expected, {}, window)[0]


def _union(ws: list[WorkerProc]) -> Series:
    """All workers' KPI series together; a series exported by two workers is an error."""
    merged: Series = {}
    for w in ws:
        kpis, _ = _scrape(w)
        for name, rows in kpis.items():
            target = merged.setdefault(name, {})
            twice = target.keys() & rows.keys()
            assert not twice, f"{name} exported by two workers: {sorted(twice)[:3]}"
            target.update(rows)
    return merged


def _eventually_equal(expected: Series, ws: list[WorkerProc], timeout: float = 15) -> None:
    """Share of voice crosses workers through the market topic: allow it a few seconds."""
    deadline = time.monotonic() + timeout
    while True:
        problems = oracle.compare(expected, _union(ws))
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])
