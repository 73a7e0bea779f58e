"""An account's messages and orphan replies are written in bounded parts; its core is the
commit point: a flush cut short between them restores what the core lists."""

from __future__ import annotations

import orjson

from streams.core.aggregates import PART_ENTRIES, AccountCore
from streams.core.changelog import StateRecord
from streams.core.engine import Engine
from streams.core.keys import MESSAGES, core_key, parse_state_key
from streams.settings import Settings
from tests.unit.streams.core.test_engine import T0, Clock, ev, feed, value

S = Settings(clock="event", windows=["1h"])


def _records(state: list[StateRecord]) -> list[tuple[bytes, bytes]]:
    """What a compacted changelog holds after ``state`` (the newest per key, no tombstones)."""
    newest: dict[bytes, bytes | None] = {}
    for r in state:
        newest[r.key] = r.value
    return [(k, v) for k, v in newest.items() if v is not None]


def test_fifty_five_thousand_orphan_replies_make_no_record_over_two_megabytes() -> None:
    e = Engine(S, now_ms=Clock(T0))
    replies = [ev(f"r{i}", "reply", ts=T0 + i, in_reply_to=f"unknown{i}") for i in range(55_000)]
    feed(e, *replies)
    snap = e.snapshot()
    assert max(len(r.value or b"") for r in snap.state) < 2 << 20  # a dedup chunk: 1.3 MiB
    parts = [r for r in snap.state if parse_state_key(r.key).kind == MESSAGES]
    assert len(parts) >= 55_000 // PART_ENTRIES
    assert max(len(r.value or b"") for r in parts) < 512 << 10
    restored = Engine(S, now_ms=Clock(T0))
    restored.restore(0, _records(snap.state + snap.marks))
    assert len(restored.partitions[0].cores["acme"].orphans) == 55_000


def test_a_restore_reads_the_parts_its_core_lists_and_drops_the_others() -> None:
    e = Engine(S, now_ms=Clock(T0))
    feed(e, ev("m1", "comment", needs_response=True), ev("m2", "comment", needs_response=True))
    first = e.snapshot()
    feed(e, ev("r1", "reply", ts=T0 + 60_000, in_reply_to="m1"), start=2)
    second = e.snapshot()
    # The flush of ``second`` cut short after its new part, before its core: the changelog
    # holds the new part beside the first core, which lists the old one.
    cut = [r for r in second.state if parse_state_key(r.key).kind == MESSAGES and r.value]
    restored = Engine(S, now_ms=Clock(T0))
    ps = restored.restore(0, _records(first.state + first.marks + cut))
    core = ps.cores["acme"]
    assert core.pending == {"m1", "m2"}  # the reply is not in the first core's state
    assert any(parse_state_key(k).kind == MESSAGES for k in ps.dirty_deleted)
    # replaying the reply (above the first mark) answers m1 once
    feed(restored, ev("r1", "reply", ts=T0 + 60_000, in_reply_to="m1"), start=2)
    assert restored.partitions[0].cores["acme"].pending == {"m2"}
    assert value(restored, S, "social_response_ratio", "acme", "all", "1h") == 0.5
    full = Engine(S, now_ms=Clock(T0))
    full.restore(0, _records(first.state + first.marks + second.state + second.marks))
    assert full.partitions[0].cores["acme"].pending == {"m2"}


def test_messages_inside_a_core_of_earlier_state_move_into_parts() -> None:
    old = AccountCore()
    old.applied = 1
    encoded = orjson.loads(old.encode())
    del encoded["q"]
    encoded["m"] = {"m1": [T0, "x", True, False, False]}
    encoded["o"] = {}
    e = Engine(S, now_ms=Clock(T0))
    ps = e.restore(0, [(core_key(0, "acme"), orjson.dumps(encoded))])
    assert ps.cores["acme"].pending == {"m1"} and "acme" in ps.dirty_cores
    snap = e.snapshot()
    assert any(parse_state_key(r.key).kind == MESSAGES for r in snap.state)
    again = Engine(S, now_ms=Clock(T0)).restore(0, _records(snap.state))
    assert again.cores["acme"].pending == {"m1"}


def test_an_unchanged_part_is_not_rewritten() -> None:
    e = Engine(S, now_ms=Clock(T0))
    feed(e, *[ev(f"m{i}", "comment", ts=T0 + i) for i in range(3 * PART_ENTRIES)])
    e.snapshot()
    core = e.partitions[0].cores["acme"]
    assert core.n_parts == 4
    feed(e, ev("m0b", "like", ts=T0 + 5), start=10**6)  # no message changed
    assert not [r for r in e.snapshot().state if parse_state_key(r.key).kind == MESSAGES]
    feed(e, ev("r", "reply", ts=T0 + 9, in_reply_to="m7"), start=10**6 + 1)
    written = [r for r in e.snapshot().state if parse_state_key(r.key).kind == MESSAGES]
    assert len([r for r in written if r.value]) == 1  # m7's part, and its old generation
    assert len([r for r in written if r.value is None]) == 1
