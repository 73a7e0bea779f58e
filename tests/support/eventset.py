"""Test input with every hard case: simulated traffic, duplicates, disorder, late and bad records.

Used by the unit oracle test (engine in-process) and by the integration test (real Kafka), so both
check the same kinds of input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from streams.settings import read_business_hours
from streams.tools.simulate import DENSE_MIX, SimulationConfig, Simulator

# The schedules the oracle tests run with (SOCIALPULSE_BUSINESS_HOURS_FILE): acme's own and the
# market "coffee"'s, each three working minutes of every five, so that any span of test traffic
# has business and off hours.
BUSINESS_HOURS = Path(__file__).with_name("business_hours.toml")
# Those schedules repeat every five minutes in UTC (both zones are a whole number of five minutes
# off UTC): the simulator's draws depend on where its traffic starts in that cycle (a message off
# hours schedules its reply at the next opening), so a data set is drawn from a start at one fixed
# point of the cycle and then moved to where its test wants it, and is the same data set
# whatever the time it is built at. ``tests/unit/test_datasets.py`` checks both.
SCHEDULE_CYCLE_MS = 5 * 60_000
_CYCLE_POINT_MS = 7_250  # where in the cycle every data set is drawn from: an arbitrary instant


@dataclass(frozen=True)
class TestRecord:
    key: bytes | None
    value: bytes


# Rare types the traffic mix may not draw in a short run: every KPI family must be checked.
# Each is placed a second after the previous one from the start of the span.
_RARE: tuple[dict[str, object], ...] = (
    {"type": "survey", "survey": "nps", "score": 10},
    {"type": "survey", "survey": "nps", "score": 9},
    {"type": "survey", "survey": "nps", "score": 7},
    {"type": "survey", "survey": "nps", "score": 3},
    {"type": "survey", "survey": "csat", "score": 4},
    {"type": "review", "rating": 5, "user_id": "u-rare"},
    {"type": "purchase", "amount": 19.5, "currency": "EUR", "user_id": "u-rare",
     "campaign": "coverage"},
    {"type": "spend", "amount": 3.0, "currency": "EUR", "campaign": "coverage"},
    {"type": "click", "campaign": "coverage"},
    {"type": "impression", "campaign": "coverage", "user_id": "u-rare"},
    {"type": "visit", "pages": 3, "bounced": False, "duration_seconds": 42.0},
)


def _account_key(raw: bytes) -> bytes | None:
    """The account of a malformed record that is still a JSON object with a string account
    (the harness sends such a record as a dict: orjson writes it back byte for byte)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    account = obj.get("account") if isinstance(obj, dict) else None
    if not isinstance(account, str) or orjson.dumps(obj) != raw:
        return None
    return account.encode()


def _moved(ts: int | str, shift_ms: int) -> int | str:
    """An event time ``shift_ms`` later, in the form it came in (epoch ms or RFC 3339 with the
    same UTC offset)."""
    if isinstance(ts, int):
        return ts + shift_ms
    moved = datetime.fromisoformat(ts) + timedelta(milliseconds=shift_ms)
    text = moved.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if ts.endswith("Z") else text


def build(
    *, end_ms: int, span_s: float, count: int, late_ms: int, seed: int = 7,
    scenario: str = "bad-input",
) -> list[TestRecord]:
    """At most ``count`` simulated records over the ``span_s`` seconds of event time before
    ``end_ms``, then: 3 % re-sent later (duplicates), local shuffles (out of order), 1 % moved
    ``late_ms`` into the past (late), and the scenario's bad records.

    No event is later than ``end_ms``, whatever the hour: the traffic is flat (the simulator's
    daily curve would stretch or squeeze the span by the hour of the day) and generation stops
    at ``end_ms`` even if fewer than ``count`` records were drawn by then. And it is the same
    data set, moved in time, whatever ``end_ms`` (see ``SCHEDULE_CYCLE_MS``).
    ``tests/unit/test_datasets.py`` holds every data set of the suites to both.
    """
    if span_s < len(_RARE):
        raise ValueError(f"span_s must leave room for the rare records: {span_s}")
    start_ms = end_ms - int(span_s * 1000)
    shift_ms = (start_ms - _CYCLE_POINT_MS) % SCHEDULE_CYCLE_MS
    rng = random.Random(seed)
    # The dense mix (every KPI family in a few thousand records), replies within a minute or so
    # (most answers of a real desk come after the few minutes a test's traffic lasts), and care
    # teams that keep the tests' business hours: replies to messages of off time wait for the
    # next shift. No viral posts: their bursts follow the wall clock's week, and a data set must
    # not depend on the hour it is built at.
    sim = Simulator(SimulationConfig(
        seed=seed, scenario=scenario, users=5_000, daily_amplitude=0.0,  # type: ignore[arg-type]
        mix=DENSE_MIX, reply_median_s=45.0, viral_posts_per_week=0.0,
        business_hours=read_business_hours(BUSINESS_HOURS),
        account_markets={"acme": "coffee", "globex": "coffee"}))
    base: list[TestRecord] = []
    for rec in sim.events(start_ms - shift_ms, count=count, duration_s=span_s,
                          rate=count / span_s):
        if isinstance(rec, bytes):
            # Keyed by its account when it has one, as a producer keying by account would
            # (and as the harness produces it: a JSON object with a key goes as a dict). Left
            # where it was drawn: malformed, it is rejected whatever its time.
            base.append(TestRecord(_account_key(rec), rec))
            continue
        rec = {**rec, "ts": _moved(rec["ts"], shift_ms)}
        if rng.random() < 0.01:
            rec = {**rec, "ts": int(rec["ts"] if isinstance(rec["ts"], int) else start_ms)
                   - late_ms, "event_id": rec["event_id"] + "-late"}
        base.append(TestRecord(rec["account"].encode(), orjson.dumps(rec)))
    for i, fields in enumerate(_RARE):
        extra = {"event_id": f"rare-{seed}-{i}", "ts": start_ms + 1000 * i, "account": "acme",
                 "platform": "web", **fields}
        base.append(TestRecord(b"acme", orjson.dumps(extra)))
    # A message that an agent of a team answers (and resolves), whatever the simulator's mix.
    message = f"rare-{seed}-message"
    for fields in (
        {"event_id": message, "type": "comment", "ts": start_ms + 500, "needs_response": True,
         "post_id": "acme-rare-post", "user_id": "u-rare"},
        {"event_id": message + "-reply", "type": "reply", "in_reply_to": message,
         "ts": start_ms + 500 + int(min(90.0, span_s / 2) * 1000), "resolved": True,
         "agent": "agent-rare", "team": "desk-rare"},
    ):
        base.append(TestRecord(b"acme", orjson.dumps({"account": "acme", "platform": "web",
                                                      **fields})))
    # out of order: shuffle inside small blocks, so event time goes back and forth
    out: list[TestRecord] = []
    for i in range(0, len(base), 25):
        block = base[i:i + 25]
        rng.shuffle(block)
        out.extend(block)
    # duplicates: producer retries land a little later in the stream
    for _ in range(len(out) * 3 // 100):
        j = rng.randrange(len(out))
        dup = out[j]
        out.insert(min(len(out), j + rng.randint(1, 500)), dup)
    return out


# --- the data sets of the suites, each from the wall clock it is built at --------------------

MINUTE_MS = 60_000
LATE_MS = 40 * MINUTE_MS  # how much older the deliberately late events are


def at_rate(now_ms: int, count: int, *, seed: int = 7) -> list[TestRecord]:
    """``count`` records at 20 a second from 40 minutes before ``now_ms`` (the default traffic
    of the oracle tests: every window of a test sees it from the same distance)."""
    span = count / 20.0
    return build(end_ms=now_ms - 40 * MINUTE_MS + int(span * 1000), span_s=span, count=count,
                 late_ms=LATE_MS, seed=seed)


def spread(count: int, *, span_s: float, end_ms: int, seed: int = 7) -> list[TestRecord]:
    """``count`` records over the ``span_s`` seconds before ``end_ms``, whatever their count (a
    run of any size fits in one window)."""
    return build(end_ms=end_ms, span_s=span_s, count=count, late_ms=LATE_MS, seed=seed)
