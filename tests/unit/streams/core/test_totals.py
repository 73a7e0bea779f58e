"""Lifetime totals (SPEC §4, ``streams.core.totals``): exact through flushes cut short at any
record, reset only with the account's label decision, per partition for "_other", and the
histogram's buckets."""

from __future__ import annotations

import time

import orjson
import pytest

from streams.core.catalogue import TOTAL_KPIS, part_names
from streams.core.engine import Engine
from streams.core.keys import TOTALS, parse_state_key
from streams.core.series import compute
from streams.core.totals import RESPONSE_BUCKETS, CareTotals
from streams.settings import Settings
from tests.support import eventset, oracle
from tests.unit.streams.core.test_engine_oracle import PARTITIONS, _partitioned, _settings

TOTAL_SAMPLES = {name for m in TOTAL_KPIS for name, _labels in part_names(m)}
Records = list[tuple[int, int, bytes | None, bytes]]


def _totals(series: dict[str, list[tuple[tuple[str, ...], float]]]) -> dict:
    return {name: dict(rows) for name, rows in series.items() if name in TOTAL_SAMPLES}


@pytest.fixture(scope="module")
def records() -> Records:
    return _partitioned(eventset.at_rate(int(time.time() * 1000), 2_000, seed=3))


def test_a_flush_cut_short_at_any_record_then_a_replay_counts_each_event_once(
    records: Records,
) -> None:
    """The totals record and the account core carry their own applied offsets: whichever of
    them a crash left behind the other, the replay adds to each what it lacks."""
    s = _settings()
    wall = int(time.time() * 1000)
    expected = {k: v for k, v in oracle.run(((p, o, v) for p, o, _k, v in records), s,
                                            wall).series.items() if k in TOTAL_SAMPLES}
    assert {"social_impressions_total", "social_messages_answered_total",
            "social_response_seconds_bucket"} <= expected.keys()
    first, second = len(records) // 3, 2 * len(records) // 3
    engine = Engine(s, now_ms=lambda: wall)
    engine.ingest_batch(records[:first])
    base = engine.snapshot()
    engine.ingest_batch(records[first:second])
    torn = engine.snapshot()
    kinds = [parse_state_key(r.key).kind for r in torn.state]
    assert TOTALS in kinds and "c" in kinds
    cuts = sorted({*range(0, len(torn.state) + 1, max(1, len(torn.state) // 12)),
                   kinds.index(TOTALS), len(torn.state)})
    for cut in cuts:
        changelog: dict[bytes, bytes | None] = {}
        for _p, k, v in [*base.state, *base.marks, *torn.state[:cut]]:
            changelog[k] = v
        restored = Engine(s, now_ms=lambda: wall)
        for p in range(PARTITIONS):
            prefix = f"{p}:".encode()
            restored.restore(p, [(k, v) for k, v in changelog.items()
                                 if k.startswith(prefix) and v is not None])
        restored.ingest_batch(records)  # from offset 0: the commits lag the changelog
        problems = oracle.compare(expected, _totals(compute(restored, s)))
        assert not problems, f"cut at {cut} of {len(torn.state)}:\n" + "\n".join(problems[:20])


def _event(i: int, ts: int, account: str, etype: str = "impression", **extra: object) -> bytes:
    return orjson.dumps({"event_id": f"e{i}", "type": etype, "ts": ts, "account": account,
                         "platform": "x", "user_id": f"u{i}", **extra})


def test_an_account_quiet_for_the_horizon_starts_its_counters_again() -> None:
    s = Settings(clock="event", windows=["1m"], grace_seconds=0, topic_partitions=1)
    t0 = 1_700_000_000_000
    engine = Engine(s, now_ms=lambda: t0)
    engine.ingest_batch([(0, i, b"acme", _event(i, t0 + i, "acme")) for i in range(3)])
    engine.snapshot()
    key = (("acme", "all", ""),)
    assert _totals(compute(engine, s))["social_impressions_total"][key[0]] == 3
    # rival's events move the clock two horizons on: acme's decision lapses and its totals go
    later = t0 + 3 * s.retention_ms
    engine.ingest_batch([(0, 3, b"rival", _event(3, later, "rival"))])
    snap = engine.snapshot()
    assert b"0:t:acme" in [r.key for r in snap.state if r.value is None]
    assert ("acme", "all", "") not in _totals(compute(engine, s))["social_impressions_total"]
    engine.ingest_batch([(0, 4, b"acme", _event(4, later + 1, "acme"))])
    assert _totals(compute(engine, s))["social_impressions_total"][key[0]] == 1


def test_other_counts_per_partition_on_all_platforms_only() -> None:
    s = Settings(clock="event", windows=["1m"], max_accounts=2, topic_partitions=2)
    t0 = 1_700_000_000_000
    accounts = [f"acct{i}" for i in range(12)]
    recs: Records = []
    offsets = [0, 0]
    for i, acc in enumerate(accounts):
        p = oracle.home_partition(acc, 2)
        recs.append((p, offsets[p], acc.encode(), _event(i, t0 + i, acc)))
        offsets[p] += 1
    engine = Engine(s, now_ms=lambda: t0)
    engine.ingest_batch(recs)
    other = {labels: v for labels, v in _totals(compute(engine, s))[
        "social_impressions_total"].items() if labels[0] == "_other"}
    assert sum(other.values()) == len(accounts) - 2
    assert {labels[1] for labels in other} == {"all"}
    assert {labels[2] for labels in other} <= {"0", "1"} and len(other) == 2


def test_the_histogram_puts_a_bound_in_its_own_bucket() -> None:
    ct = CareTotals()
    for seconds in (0.0, 30.0, 30.5, 3600.0, 1e9):
        ct.observe(seconds)
    le = dict(zip((*RESPONSE_BUCKETS, float("inf")), ct.cumulative(), strict=True))
    assert le[30] == 2 and le[60] == 3 and le[3600] == 4 and le[float("inf")] == 5
    assert ct.responses == 5 and ct.response_sum == pytest.approx(30 + 30.5 + 3600 + 1e9)
