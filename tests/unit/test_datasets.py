"""Every data set the suites build ends where its test says, whatever the hour it is built at.

The simulator's traffic follows a daily curve; a data set that assumed the average rate once
spanned twice its intended event time when built in the morning and ended in the future, so the
suite passed or failed by the hour (issue #9). Here each data set is built at each of the 24 start
hours and must hold:

- no valid event later than its intended end (nor, late ones aside, earlier than its start);
- no record whose verdict depends on when it is validated: parsed at the build's wall clock and
  an hour later, every record gets the same verdict (so no event sits within the future
  tolerance of the wall clock, where the worker at ingest and the oracle later could disagree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
import pytest

from schemas.events import Event, Rejected
from schemas.validate import parse
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
