"""Every data set the suites build ends where its test says, whatever the hour it is built at.

The simulator's traffic follows a daily curve; a data set that assumed the average rate once
spanned twice its intended event time when built in the morning and ended in the future, so the
suite passed or failed by the hour (issue #9). Here each data set is built at each of the 24 start
hours and must hold:

- no valid event later than its intended end (nor, late ones aside, earlier than its start);
- no record whose verdict depends on when it is validated: parsed at the build's wall clock and
  an hour later, every record gets the same verdict (so no event sits within the future
  tolerance of the wall clock, where the worker at ingest and the oracle later could disagree).

And each is the same data set, moved in time, whatever the instant it is built at, to the
millisecond: one built from the wall clock once held an oversized record or a second goal of an
account at some minutes and not at others, and a test counting them failed by the minute.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import orjson
import pytest

from schemas.events import Event, Rejected
from schemas.validate import parse
from streams.settings import read_business_hours
from tests.integration import (
    test_cardinality,
    test_hostile_input,
    test_reliability,
    test_security,
)
from tests.support import eventset, harness

HOUR = 3_600_000
# A Monday, 00:07:13.250 UTC: minutes and milliseconds off the grid, as a real start is.
DAY_START = 1_796_083_200_000 + 7 * 60_000 + 13_250


@dataclass(frozen=True)
class DataSet:
    """A builder of records from the wall clock, and the event time its test intends."""

    name: str
    build: Callable[[int], Iterable[bytes]]
    start: Callable[[int], int]  # earliest valid (not deliberately late) event, from now
    end: Callable[[int], int]  # latest valid event, from now


def _values(records: list[eventset.TestRecord]) -> list[bytes]:
    return [r.value for r in records]


SPAN_MS = int(test_reliability.SPAN_S * 1000)
DATA_SETS = [
    DataSet("harness default (worker oracle)",
            lambda now: _values(harness._records(now_ms=now)),
            lambda now: now - 40 * 60_000, lambda now: now - 35 * 60_000),
    DataSet("reliability span (kill -9, takeover, graceful stop, broker restart)",
            lambda now: _values(harness._records(test_reliability.KILL_EVENTS,
                                                 span_s=test_reliability.SPAN_S, now_ms=now)),
            lambda now: now - 120_000 - SPAN_MS, lambda now: now - 120_000),
    DataSet("lost state, old run",
            lambda now: _values(harness._records(
                test_reliability.STATE_EVENTS, span_s=test_reliability.SPAN_S,
                end_ms=now - 30 * 60_000, now_ms=now)),
            lambda now: now - 30 * 60_000 - SPAN_MS, lambda now: now - 30 * 60_000),
    DataSet("lost state, new run",
            lambda now: _values(harness._records(600, span_s=120, end_ms=now - 120_000, seed=8,
                                                 now_ms=now)),
            lambda now: now - 240_000, lambda now: now - 120_000),
    DataSet("security",
            lambda now: _values(eventset.at_rate(now, test_security.COUNT)),
            lambda now: now - 40 * 60_000,
            lambda now: now - 40 * 60_000 + test_security.COUNT * 50),
    DataSet("hostile input, valid traffic",
            lambda now: _values(eventset.spread(test_hostile_input.VALID, span_s=35 * 60,
                                                end_ms=now - 5 * 60_000)),
            lambda now: now - 40 * 60_000, lambda now: now - 5 * 60_000),
    DataSet("engine oracle (unit)",
            lambda now: _values(eventset.at_rate(now, 6_000)),
            lambda now: now - 40 * 60_000, lambda now: now - 35 * 60_000),
    DataSet("cardinality",
            lambda now: (orjson.dumps(ev) for ev in test_cardinality.events_at(now)),
            lambda now: now - 15 * 60_000, lambda now: now - 60_000),
]


@pytest.mark.parametrize("hour", range(24))
@pytest.mark.parametrize("data", DATA_SETS, ids=lambda d: d.name)
def test_data_set_ends_where_its_test_says(data: DataSet, hour: int) -> None:
    now = DAY_START + hour * HOUR
    start, end = data.start(now), data.end(now)
    valid = 0
    for raw in data.build(now):
        ev = parse(raw, now_ms=now)
        if isinstance(ev, Rejected):
            # A valid event here is at or before its end, itself before now: only a rejected
            # one can change its verdict as the wall clock moves on.
            later = parse(raw, now_ms=now + HOUR)
            assert isinstance(later, Rejected) and later.reason == ev.reason, raw[:200]
            continue
        assert isinstance(ev, Event)
        valid += 1
        assert ev.ts <= end, f"{ev.ts - end} ms after the intended end: {raw[:200]!r}"
        if not ev.event_id.endswith("-late"):
            assert ev.ts >= start, f"{start - ev.ts} ms before the intended start"
    assert valid > 0


_RUN_PREFIX = re.compile(r"^(sim\d+-)[0-9a-f]+-")


def _as_built_at(data: DataSet, now: int) -> list[Event | str]:
    """The data set built at ``now``: its events with their times counted from ``now`` and the
    simulator's run prefix (its seed and start, which keep runs apart) cut from their ids, its
    rejected records as their reason (a far-future one's detail says how far from ``now``)."""
    out: list[Event | str] = []
    for raw in data.build(now):
        ev = parse(raw, now_ms=now)
        if isinstance(ev, Rejected):
            out.append(ev.reason.value)
            continue
        reply_to = ev.in_reply_to and _RUN_PREFIX.sub(r"\1", ev.in_reply_to)
        out.append(replace(ev, ts=ev.ts - now, event_id=_RUN_PREFIX.sub(r"\1", ev.event_id),
                           in_reply_to=reply_to))
    return out


@pytest.mark.parametrize("data", DATA_SETS, ids=lambda d: d.name)
def test_data_set_is_the_same_whatever_the_instant_it_is_built_at(data: DataSet) -> None:
    reference = _as_built_at(data, DAY_START)
    # Instants off the reference by odd amounts: within the five-minute cycle of the tests'
    # business hours, across it, and on another day.
    for offset in (1, 61_337, 137_777, 299_999, 2 * HOUR + 191_009, 29 * HOUR + 7_777):
        built = _as_built_at(data, DAY_START + offset)
        assert len(built) == len(reference), f"{len(built)} records != {len(reference)} ({offset})"
        for i, (got, want) in enumerate(zip(built, reference, strict=True)):
            assert got == want, f"record {i} built {offset} ms later: {got} != {want}"


def test_the_tests_business_hours_repeat_every_cycle() -> None:
    """What makes a data set the same at every instant: the schedules the simulator draws by
    repeat every ``SCHEDULE_CYCLE_MS``, through a whole day and a daylight-saving change."""
    schedules = read_business_hours(eventset.BUSINESS_HOURS).schedules
    assert schedules
    cycle = eventset.SCHEDULE_CYCLE_MS
    # 2026-03-29, the night Berlin moves to summer time, and a Monday
    for day_start in (1_774_742_400_000, DAY_START):
        for t in range(day_start, day_start + 24 * HOUR, 13_001):
            for name, hours in schedules.items():
                assert hours.is_open(t) == hours.is_open(t + cycle), (name, t)
