"""streams.worker.flusher with fakes: state, then marks, then acks; a failed write acks nothing.

The sink, the acks and the market board are fakes that write to one shared log, so the order of
every write and ack across them is what the assertions read. The engine is the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
import pytest
from prometheus_client import CollectorRegistry

from streams.build import build_info
from streams.core.engine import Engine
from streams.export.health import Health
from streams.settings import Settings
from streams.worker.flusher import Flusher, FlushTopics
from streams.worker.outlet import OutRecord

T0 = 1_800_000_000_000
TOPICS = FlushTopics(input="in", changelog="changelog", dead_letters="dlq", markets="markets")


def ev(n: int, etype: str = "impression", **fields: Any) -> bytes:
    return orjson.dumps({"event_id": str(n), "type": etype, "ts": T0 + n, "account": "acme",
                         "platform": "x", **fields})


@dataclass
class World:
    """The shared log and the fakes that write to it."""

    log: list[tuple[Any, ...]] = field(default_factory=list)
    fail_sends: set[int] = field(default_factory=set)  # 0-based numbers of sends that raise
    sends: int = 0
    forgotten: list[set[int]] = field(default_factory=list)

    async def send(self, records: Sequence[OutRecord]) -> None:
        n = self.sends
        self.sends += 1
        if n in self.fail_sends:
            raise ConnectionError(f"send {n} refused")
        self.log.append(("send", [(r.topic, r.partition, r.key, r.value, r.headers)
                                  for r in records]))

    def ack_through(self, partition: int, next_offset: int) -> None:
        self.log.append(("ack", partition, next_offset))

    def forget(self, partitions: set[int]) -> None:
        self.forgotten.append(partitions)

    def expired(self, partition: int, floors: list[int]) -> list[bytes]:
        return []


def build(world: World, max_pending: int = 1_000, dead_max: int = 1024) -> tuple[Engine, Flusher]:
    s = Settings(clock="event", windows=["1m"], markets={"acme": "coffee"})
    engine = Engine(s, now_ms=lambda: T0 + 60_000)
    flusher = Flusher(engine, world, world, world, TOPICS,
                      Health(CollectorRegistry(), build_info()), max_pending, dead_max)
    return engine, flusher


def apply(engine: Engine, flusher: Flusher, partition: int, records: list[bytes],
          start: int = 0) -> None:
    engine.ingest_batch(((partition, start + i, None, r) for i, r in enumerate(records)),
                        flusher.outcome)
    flusher.ack_when_durable(partition, start + len(records) - 1, len(records))


def kinds(send: tuple[Any, ...]) -> set[str]:
    """What one send holds: state (bucket, core, dedup chunk), mark, dead, market."""
    out = set()
    for topic, _p, key, _v, _h in send[1]:
        if topic == "changelog":
            out.add("mark" if key.endswith(b":m") else "state")
        elif topic == "dlq":
            out.add("dead")
        else:
            out.add("market")
    return out


def test_state_then_marks_then_acks() -> None:
    world = World()
    engine, flusher = build(world)
    apply(engine, flusher, 0, [ev(1), ev(2, "mention"), b"{not json"])
    apply(engine, flusher, 1, [ev(3)])
    asyncio.run(flusher.flush())
    assert [entry[0] for entry in world.log] == ["send", "send", "ack", "ack"]
    first, then = world.log[0], world.log[1]
    assert kinds(first) == {"state", "dead"}
    assert kinds(then) == {"mark", "market"}
    assert sorted(world.log[2:]) == [("ack", 0, 3), ("ack", 1, 1)]
    assert flusher.pending == 0 and flusher.flushes_total == 1


def test_a_dead_letter_names_its_source_and_reason() -> None:
    world = World()
    engine, flusher = build(world)
    apply(engine, flusher, 2, [ev(1), b"{not json"])
    asyncio.run(flusher.flush())
    dead = [r for r in world.log[0][1] if r[0] == "dlq"]
    assert len(dead) == 1
    _topic, partition, _key, value, headers = dead[0]
    assert (partition, value) == (2, b"{not json")
    h = dict(headers)
    assert h["source"] == b"in/2/1" and h["reason"] == b"not_json"


@pytest.mark.parametrize("failing", [0, 1], ids=["state write fails", "marks write fails"])
def test_a_failed_write_acks_nothing_and_is_written_again_first(failing: int) -> None:
    world = World(fail_sends={failing})
    engine, flusher = build(world)
    apply(engine, flusher, 0, [ev(1), ev(2)])
    asyncio.run(flusher.flush())
    assert not [e for e in world.log if e[0] == "ack"]
    if failing == 0:
        assert world.log == []  # no mark without its state
    assert flusher.flushes_total == 0
    # Newer records arrive. Unwritten, the old snapshot merges with the new one (one write, its
    # newest mark); half written, its marks go first, then the new snapshot.
    apply(engine, flusher, 0, [ev(3)], start=2)
    asyncio.run(flusher.flush())
    sends = [e for e in world.log if e[0] == "send"]
    acks = [e for e in world.log if e[0] == "ack"]
    marks = [orjson.loads(r[3]) for e in sends for r in e[1] if r[2] == b"0:m"]
    if failing == 0:
        assert acks == [("ack", 0, 3)]
        assert [flushed for _stream_time, flushed, *_fingerprint in marks] == [2]
    else:
        assert acks == [("ack", 0, 2), ("ack", 0, 3)]
        assert [flushed for _stream_time, flushed, *_fingerprint in marks] == [1, 2]
    # Each ack comes after the marks that vouch for it.
    last_mark = max(i for i, e in enumerate(world.log) if e[0] == "send" and "mark" in kinds(e))
    assert world.log.index(("ack", 0, 3)) > last_mark
    assert flusher.flushes_total == 1


def test_revoked_partitions_are_neither_written_nor_acked() -> None:
    world = World(fail_sends={0})
    engine, flusher = build(world)
    apply(engine, flusher, 0, [ev(1)])
    apply(engine, flusher, 1, [ev(2), b"{not json"])
    asyncio.run(flusher.flush())  # fails: both partitions wait in the backlog
    apply(engine, flusher, 1, [ev(3)], start=2)
    asyncio.run(flusher.forget({1}))
    assert world.forgotten == [{1}] and 1 not in engine.partitions
    apply(engine, flusher, 0, [ev(4)], start=1)
    asyncio.run(flusher.flush())
    written = {r[1] for e in world.log if e[0] == "send" for r in e[1]}
    assert written == {0}
    assert [e for e in world.log if e[0] == "ack"] == [("ack", 0, 2)]


def test_backpressure_flushes_in_the_background_then_waits() -> None:
    world = World()
    engine, flusher = build(world, max_pending=2)

    async def scenario() -> list[int]:
        seen = []
        apply(engine, flusher, 0, [ev(1)])
        await flusher.flush_if_behind()  # under the limit: nothing
        seen.append(world.sends)
        apply(engine, flusher, 0, [ev(2), ev(3)], start=1)
        await flusher.flush_if_behind()  # past it: a background flush, not awaited here
        seen.append(world.sends)
        await asyncio.sleep(0.05)
        seen.append(world.sends)
        apply(engine, flusher, 0, [ev(n) for n in range(4, 12)], start=3)
        await flusher.flush_if_behind()  # four times past it: flushed before returning
        seen.append(world.sends)
        return seen

    assert asyncio.run(scenario()) == [0, 0, 2, 4]


def test_a_snapshot_that_cannot_be_encoded_acks_nothing_and_keeps_the_acks() -> None:
    world = World()
    engine, flusher = build(world)
    apply(engine, flusher, 0, [ev(1), ev(2, "mention", author_followers=5), b"{not json"])
    agg = next(iter(engine.partitions[0].buckets.values())).platforms["x"]
    potential = agg.counts.index(5)
    agg.counts[potential] = 2**64
    asyncio.run(flusher.flush())
    assert world.log == [] and flusher.pending == 3
    failures = flusher.health.flush_failures.labels("encode")._value.get()
    assert failures == 1
    agg.counts[potential] = 5
    asyncio.run(flusher.flush())
    assert kinds(world.log[0]) == {"state", "dead"} and kinds(world.log[1]) == {"mark", "market"}
    assert world.log[2:] == [("ack", 0, 3)]


def test_a_dead_letter_too_large_for_its_topic_is_stored_truncated_and_says_so() -> None:
    world = World()
    engine, flusher = build(world, dead_max=1024)
    poison = b"{" + b" " * 5_000  # not JSON, and far over the limit
    apply(engine, flusher, 0, [ev(1), poison, b"{small"])
    asyncio.run(flusher.flush())
    dead = {r[3][:6]: r for r in world.log[0][1] if r[0] == "dlq"}
    big = dead[poison[:6]]
    assert len(big[3]) == 1024 and big[3] == poison[:1024]
    h = dict(big[4])
    assert h["truncated"] == b"true" and h["original_size"] == b"5001"
    assert h["reason"] == b"not_json" and h["source"] == b"in/0/1"
    small = dict(dead[b"{small"][4])
    assert "truncated" not in small and dead[b"{small"][3] == b"{small"
    assert world.log[2:] == [("ack", 0, 3)]


def test_the_backlog_is_bounded_counted_and_written_once_when_the_broker_is_back() -> None:
    """While every write fails, unwritten snapshots merge (a key keeps its newest record), the
    records they cover count as pending (for backpressure and /status), and when the broker is
    back the dead letters are written once and everything is acked."""
    world = World(fail_sends=set(range(0, 6)))
    engine, flusher = build(world)
    for i in range(5):
        apply(engine, flusher, 0, [ev(10 + i), b"{bad"], start=2 * i)
        asyncio.run(flusher.flush())
    assert flusher.backlog == 1 and flusher.pending == 10
    world.fail_sends = set()
    asyncio.run(flusher.flush())  # nothing new: the backlog alone is written
    assert flusher.backlog == 0 and flusher.pending == 0
    sends = [e for e in world.log if e[0] == "send"]
    dead = [r for e in sends for r in e[1] if r[0] == "dlq"]
    assert len(dead) == 5
    keys = [r[2] for e in sends for r in e[1] if r[0] == "changelog"]
    assert len(keys) == len(set(keys))  # each key once, its newest record
    assert [e for e in world.log if e[0] == "ack"] == [("ack", 0, 10)]


def test_marks_that_failed_are_written_again_without_the_dead_letters() -> None:
    world = World(fail_sends={1})  # the state and dead letters go through, the marks do not
    engine, flusher = build(world)
    apply(engine, flusher, 0, [ev(1), b"{bad"])
    asyncio.run(flusher.flush())
    assert flusher.backlog == 1 and flusher.pending == 2
    asyncio.run(flusher.flush())
    dead = [r for e in world.log if e[0] == "send" for r in e[1] if r[0] == "dlq"]
    assert len(dead) == 1
    assert [e for e in world.log if e[0] == "ack"] == [("ack", 0, 2)]


def test_a_rebalance_fences_writes_until_the_new_assignment() -> None:
    """From revocation to assignment nothing is written (a revoked partition's next owner may
    be writing its dead letters already), and a write under way finishes before the fence."""
    world = World()
    engine, flusher = build(world)
    gate = asyncio.Event()
    sent = world.send

    async def slow_send(records: Sequence[OutRecord]) -> None:
        await gate.wait()
        await sent(records)

    async def scenario() -> list[str]:
        events = []
        world.send = slow_send  # type: ignore[method-assign]
        apply(engine, flusher, 0, [ev(1), b"{bad"])
        apply(engine, flusher, 1, [ev(2), b"{bad"])
        in_flight = asyncio.create_task(flusher.flush())
        await asyncio.sleep(0.01)
        fence = asyncio.create_task(flusher.fence())
        await asyncio.sleep(0.01)
        events.append(f"fence waits for the write: {not fence.done()}")
        gate.set()
        await in_flight
        await fence
        events.append(f"acks after the write: {len([e for e in world.log if e[0] == 'ack'])}")
        apply(engine, flusher, 1, [ev(3), b"{worse"], start=2)
        await flusher.flush()  # fenced: nothing
        events.append(f"sends while fenced: {world.sends - 2}")
        await flusher.forget({1})  # the assignment: partition 1 went elsewhere
        await flusher.flush()
        dead = [r for e in world.log if e[0] == "send" for r in e[1] if r[0] == "dlq"]
        events.append(f"dead letters of 1 after the fence: {sum(r[3] == b'{worse' for r in dead)}")
        return events

    assert asyncio.run(scenario()) == [
        "fence waits for the write: True", "acks after the write: 2", "sends while fenced: 0",
        "dead letters of 1 after the fence: 0"]


class _Record(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class RekeyedAcks:
    """The repartition topic's acks, into the shared log."""

    world: World

    def ack_through(self, partition: int, next_offset: int) -> None:
        self.world.log.append(("ack-rekeyed", partition, next_offset))

    def forget(self, partitions: set[int]) -> None:
        self.world.forgotten.append(partitions)


def test_forwards_go_with_the_state_and_both_sources_are_acked_after_the_marks() -> None:
    """A record read outside its account's home (hooli lives in partition 1) is forwarded to the
    repartition topic in the state send, keyed by its account and naming its source; the input
    offset that covers it is acked only after the marks. Its home applies it from the
    repartition topic and acks that offset after its own mark, which records both sources."""
    world = World()
    s = Settings(clock="event", windows=["1m"])
    engine = Engine(s, now_ms=lambda: T0 + 60_000)
    topics = FlushTopics(input="in", changelog="changelog", dead_letters="dlq",
                         markets="markets", repartition="rekey")
    flusher = Flusher(engine, world, world, world, topics,
                      Health(CollectorRegistry(), build_info()), 1_000, 1024,
                      rekeyed_acks=RekeyedAcks(world))
    hooli = ev(2, account="hooli")
    engine.ingest_records(0, [_Record(0, None, ev(1)), _Record(1, None, hooli)], T0,
                          flusher.outcome)
    flusher.ack_when_durable(0, 1, 2)
    asyncio.run(flusher.flush())
    state, marks, ack = world.log
    assert ("rekey", 1, b"hooli", hooli, [("source", b"in/0/1")]) in state[1]
    assert kinds(marks) == {"mark"} and ack == ("ack", 0, 2)
    world.log.clear()
    engine.ingest_records(1, [_Record(0, b"hooli", hooli)], T0, flusher.outcome, rekeyed=True)
    flusher.ack_when_durable(1, 0, 1, rekeyed=True)
    asyncio.run(flusher.flush())
    _state, marks, ack = world.log
    assert ack == ("ack-rekeyed", 1, 1)
    mark = next(orjson.loads(v) for _t, p, k, v, _h in marks[1] if p == 1 and k.endswith(b":m"))
    assert mark[1] == -1 and mark[3] == 0  # input: nothing; repartition topic: offset 0
    # Revoked before its flush: a forward belongs to the partition's next owner.
    engine.ingest_records(0, [_Record(2, None, ev(3, account="hooli"))], T0, flusher.outcome)
    asyncio.run(flusher.forget({0}))
    assert not flusher.outcome.forwards
