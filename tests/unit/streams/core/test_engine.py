"""Engine rules one at a time: window edges, both clocks, late, duplicate vs replay, caps, care."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.core.engine import Engine
from streams.core.labels import OTHER_ACCOUNT
from streams.core.manifest import StateMismatch
from streams.core.series import compute
from streams.settings import Settings

T0 = 1_800_000_000_000  # ms; a multiple of every bucket width used below


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def ev(n: int | str, etype: str = "impression", ts: int = T0, **fields: Any) -> bytes:
    body = {"event_id": str(n), "type": etype, "ts": ts, "account": "acme",
            "platform": "x", **fields}
    return orjson.dumps(body)


def feed(engine: Engine, *records: bytes, partition: int = 0, start: int = 0) -> None:
    engine.ingest_batch((partition, start + i, None, r) for i, r in enumerate(records))


def value(engine: Engine, s: Settings, name: str, *labels: str) -> float | None:
    rows = dict(compute(engine, s).get(name, []))
    return rows.get(tuple(labels))


def test_window_is_the_current_bucket_and_the_29_before_it() -> None:
    s = Settings(clock="event", windows=["30s"], grace_seconds=60)  # 1 s buckets
    e = Engine(s, now_ms=Clock(T0))
    feed(e, ev(1, ts=T0 - 29_000), ev(2, ts=T0 - 30_000), ev(3, ts=T0 - 29_001), ev(4, ts=T0))
    # now = T0: buckets T0-29 s .. T0 are in; T0-29.001 s falls in bucket T0-30 s: out.
    assert value(e, s, "social_impressions", "acme", "all", "30s") == 2


def test_wall_clock_decays_to_zero_and_ratios_disappear() -> None:
    clock = Clock(T0)
    s = Settings(clock="wall", windows=["1m"], grace_seconds=0)
    e = Engine(s, now_ms=clock)
    feed(e, ev(1), ev(2, "like"))
    assert value(e, s, "social_engagement_rate_ratio", "acme", "all", "1m") == 1.0
    clock.now = T0 + 61_000
    assert value(e, s, "social_impressions", "acme", "all", "1m") == 0
    assert value(e, s, "social_engagement_rate_ratio", "acme", "all", "1m") is None


def test_late_is_relative_to_the_partition_clock() -> None:
    s = Settings(clock="event", windows=["1m"], grace_seconds=10)  # retention 70 s
    e = Engine(s, now_ms=Clock(T0))
    out = e.ingest_batch([
        (0, 0, None, ev(1, ts=T0)),
        (0, 1, None, ev(2, ts=T0 - 70_000)),  # exactly at the edge: applied
        (0, 2, None, ev(3, ts=T0 - 70_001)),  # beyond: late
        (1, 0, None, ev(4, ts=T0 - 70_001, account="hooli")),  # partition 1: its own clock
    ])
    assert out.late == 1
    assert sum(out.applied.values()) == 3


def test_duplicate_is_an_id_seen_at_an_earlier_offset_a_replay_is_the_same_offset() -> None:
    s = Settings(clock="event", windows=["1m"])
    e = Engine(s, now_ms=Clock(T0))
    out = e.ingest_batch([(0, 0, None, ev("a")), (0, 1, None, ev("a")), (0, 2, None, ev("b"))])
    assert out.duplicates == 1
    snap = e.snapshot()
    restored = Engine(s, now_ms=Clock(T0))
    restored.restore(0, [(k, v) for _p, k, v in snap.state + snap.marks if v is not None])
    again = restored.ingest_batch([(0, 0, None, ev("a")), (0, 1, None, ev("a")),
                                   (0, 2, None, ev("b")), (0, 3, None, ev("c"))])
    assert again.replayed == 3 and again.duplicates == 0
    assert value(restored, s, "social_impressions", "acme", "all", "1m") == 3


def test_account_cap_sends_new_accounts_to_other_on_platform_all_only() -> None:
    s = Settings(clock="event", windows=["1m"], max_accounts=1, max_campaigns_per_account=1)
    e = Engine(s, now_ms=Clock(T0))
    out = e.ingest_batch([
        (0, 0, None, ev(1, campaign="spring")),
        (0, 1, None, ev(2, campaign="summer")),  # second campaign of acme: _other campaign
        (0, 2, None, orjson.dumps({"event_id": "3", "type": "impression", "ts": T0,
                                   "account": "globex", "platform": "x"})),
    ])
    assert out.overflow_accounts == 1 and out.overflow_campaigns == 1
    series = compute(e, s)
    impressions = dict(series["social_impressions"])
    assert impressions[(OTHER_ACCOUNT, "all", "1m")] == 1
    assert (OTHER_ACCOUNT, "x", "1m") not in impressions
    assert not any(labels[0] == "globex" for labels in impressions)
    campaigns = dict(series["social_campaign_impressions"])
    assert campaigns == {("acme", "spring", "1m"): 1, ("acme", "_other", "1m"): 1}


def test_followers_snapshot_then_changes_after_it_in_event_time() -> None:
    s = Settings(clock="event", windows=["1m"])
    e = Engine(s, now_ms=Clock(T0))
    feed(e,
         ev(1, "follow", ts=T0 - 5_000),       # before the snapshot: already in its count
         ev(2, "followers", ts=T0 - 4_000, count=100),
         ev(3, "follow", ts=T0 - 3_000),
         ev(4, "unfollow", ts=T0 - 2_000),
         ev(5, "follow", ts=T0 - 1_000))
    assert value(e, s, "social_followers", "acme", "x") == 101
    assert value(e, s, "social_followers", "acme", "all") == 101


def test_reply_before_its_comment_still_measures_response_time() -> None:
    s = Settings(clock="event", windows=["1h"])
    e = Engine(s, now_ms=Clock(T0))
    feed(e,
         ev("r", "reply", ts=T0, in_reply_to="c", resolved=True),
         ev("c", "comment", ts=T0 - 600_000, needs_response=True),
         ev("d", "comment", ts=T0 - 300_000, needs_response=True))
    assert value(e, s, "social_response_time_seconds", "acme", "x", "1h", "0.5") == \
        pytest.approx(600, rel=0.02)
    assert value(e, s, "social_response_ratio", "acme", "all", "1h") == 0.5
    assert value(e, s, "social_resolution_ratio", "acme", "all", "1h") == 0.5
    assert value(e, s, "social_pending_responses", "acme", "all") == 1


def test_overdue_counts_pending_older_than_the_sla() -> None:
    s = Settings(clock="event", windows=["1h"], response_sla_seconds=60)
    e = Engine(s, now_ms=Clock(T0))
    feed(e, ev("old", "comment", ts=T0 - 120_000, needs_response=True),
         ev("new", "comment", ts=T0 - 30_000, needs_response=True), ev("x", ts=T0))
    assert value(e, s, "social_pending_responses", "acme", "x") == 2
    assert value(e, s, "social_overdue_responses", "acme", "x") == 1


def test_share_of_voice_is_per_market() -> None:
    s = Settings(clock="event", windows=["1h"], markets={"acme": "coffee", "globex": "coffee"})
    e = Engine(s, now_ms=Clock(T0))
    recs = [orjson.dumps({"event_id": f"{a}{i}", "type": "mention", "ts": T0, "account": a,
                          "platform": "x"}) for a, n in (("acme", 3), ("globex", 1), ("tea", 5))
            for i in range(n)]
    feed(e, *recs)
    assert value(e, s, "social_share_of_voice_ratio", "acme", "x", "1h") == 0.75
    assert value(e, s, "social_share_of_voice_ratio", "tea", "all", "1h") == 1.0


def test_money_is_never_summed_across_currencies() -> None:
    s = Settings(clock="event", windows=["1h"])
    e = Engine(s, now_ms=Clock(T0))
    feed(e, ev(1, "purchase", amount=10, currency="EUR", user_id="u1"),
         ev(2, "purchase", amount=20, currency="USD", user_id="u2"),
         ev(3, "spend", amount=5, currency="EUR"), ev(4, "click"))
    assert value(e, s, "social_revenue", "acme", "all", "1h", "EUR") == 10
    assert value(e, s, "social_revenue", "acme", "all", "1h", "USD") == 20
    assert value(e, s, "social_roi_ratio", "acme", "all", "1h", "EUR") == 1.0
    assert value(e, s, "social_roi_ratio", "acme", "all", "1h", "USD") is None
    assert value(e, s, "social_cost_per_click", "acme", "all", "1h", "EUR") == 5
    assert value(e, s, "social_customer_lifetime_value", "acme", "all", "USD") == \
        pytest.approx(20, rel=0.02)


def test_expired_buckets_are_deleted_from_the_changelog_and_stay_gone() -> None:
    """Expiry cuts at the newest event time the partition applied (never past it: see
    test_a_wall_clock_jump_ahead_does_not_expire_the_windows), here another account's event."""
    clock = Clock(T0)
    s = Settings(clock="wall", windows=["1m"], grace_seconds=0)
    e = Engine(s, now_ms=clock)
    feed(e, ev(1))
    first = e.snapshot()
    assert any(v is not None and b":b:" in k for _p, k, v in first.state)
    clock.now = T0 + 120_000
    assert not [r for r in e.snapshot().state if r.value is None]  # no event since: kept
    feed(e, ev(2, ts=T0 + 120_000, account="rival"), start=1)
    second = e.snapshot()
    tombstones = [k for _p, k, v in second.state if v is None and b":b:" in k]
    assert tombstones, "expired bucket must be deleted from the changelog"
    changelog = {k: v for _p, k, v in first.state + first.marks}
    changelog.update({k: v for _p, k, v in second.state + second.marks})
    restored = Engine(s, now_ms=clock)
    restored.restore(0, [(k, v) for k, v in changelog.items() if v is not None])
    assert not [k for k in restored.partitions[0].buckets if k[0] == "acme"]
    # quiet for the retention horizon: its label slot is free, nothing of it is exported
    assert "acme" not in restored.accounts()



def test_platform_goal_and_currency_are_capped_per_account_and_survive_a_restart() -> None:
    """Every label value from event data is capped (SPEC §4): a flood of distinct platforms,
    goals or currencies lands under "_other", never as new series."""
    s = Settings(clock="event", windows=["1m"], max_platforms_per_account=2,
                 max_goals_per_account=1, max_currencies_per_account=1)
    e = Engine(s, now_ms=Clock(T0))
    records = [*(ev(f"c{i}", "conversion", platform=f"p{i}", goal=f"g{i}") for i in range(4)),
               *(ev(f"m{i}", "purchase", platform="p0", amount=1.0, currency=c * 3)
                 for i, c in enumerate("ABC"))]
    out = e.ingest_batch((0, i, None, r) for i, r in enumerate(records))
    assert out.overflow_labels == {"platform": 2, "goal": 3, "currency": 2}
    series = compute(e, s)
    platforms = {labels[1] for rows in series.values() for labels, _ in rows}
    assert platforms == {"p0", "p1", "_other", "all"}
    goals = dict(series["social_conversions"])
    assert goals[("acme", "all", "1m", "g0")] == 1
    assert goals[("acme", "all", "1m", "_other")] == 3
    revenue = dict(series["social_revenue"])
    assert revenue == {("acme", "all", "1m", "AAA"): 1.0, ("acme", "all", "1m", "_other"): 2.0,
                       ("acme", "p0", "1m", "AAA"): 1.0, ("acme", "p0", "1m", "_other"): 2.0}
    # The admitted values are part of the account's durable state: after a restart from the
    # changelog a new value still overflows, an admitted one still does not.
    snap = e.snapshot()
    e2 = Engine(s, now_ms=Clock(T0))
    e2.restore(0, [(k, v) for _p, k, v in [*snap.state, *snap.marks] if v is not None])
    out2 = e2.ingest_batch([(0, 10, None, ev("n1", "like", platform="p9")),
                            (0, 11, None, ev("n2", "like", platform="p1"))])
    assert out2.overflow_labels == {"platform": 1}


def test_resume_offset_refuses_a_batch_beyond_a_hole() -> None:
    """A batch that does not continue what a partition applied is refused once, with the offset
    to read again from; after that read it is a real hole and accepted."""
    e = Engine(Settings(clock="event"))
    assert e.resume_offset(0, 0) is None  # offset 0 is the start of any log
    assert e.resume_offset(1, 7) == -1  # nothing applied: read from the partition's first offset
    assert e.resume_offset(1, 7) is None  # read from there, still 7: the log starts at 7
    e.ingest_batch([(2, o, None, b"{}") for o in range(5)])
    assert e.resume_offset(2, 3) is None  # overlap: replays are skipped record by record
    assert e.resume_offset(2, 5) is None  # continues
    assert e.resume_offset(2, 9) == 5  # a hole: 5..8 were never applied
    assert e.resume_offset(2, 9) is None  # re-read from 5 and 9 came first: a real hole
    assert e.resume_offset(2, 12) == 5  # a new hole is refused again


def test_all_is_refused_where_it_would_collide_with_the_totals() -> None:
    """``all`` labels the totals: as a platform or goal from event data it would make a second
    total (two ``goal="all"`` samples) or corrupt one (SPEC §1, reserved values)."""
    s = Settings(clock="event", windows=["1m"])
    e = Engine(s, now_ms=Clock(T0))
    out = e.ingest_batch([
        (0, 0, None, ev(1, "conversion", goal="signup")),
        (0, 1, None, ev(2, "conversion", goal="all")),
        (0, 2, None, ev(3, "comment", needs_response=True)),
        (0, 3, None, ev(4, "comment", needs_response=True, platform="all")),
        (0, 4, None, ev(5, "reply", in_reply_to="3")),
    ])
    series = compute(e, s)
    totals = [v for labels, v in series["social_conversions"]
              if labels == ("acme", "all", "1m", "all")]
    assert totals == [1]
    assert dict(series["social_response_ratio"])[("acme", "all", "1m")] == 1.0
    assert sorted(d.rejected.reason.value for d in out.rejected) == ["reserved_value"] * 2


def test_a_snapshot_that_cannot_be_encoded_loses_nothing() -> None:
    """An encoding error (a counter past 2**64: orjson refuses it) after the capture must not
    clear what changed nor move the mark: the next snapshot still holds it all."""
    s = Settings(clock="event", windows=["1m"])
    e = Engine(s, now_ms=Clock(T0))
    feed(e, ev(1), ev(2, "mention", author_followers=5), ev(3, "like"))
    bucket = next(iter(e.partitions[0].buckets.values()))
    agg = bucket.platforms["x"]
    potential = agg.counts.index(5)
    agg.counts[potential] = 2**64  # what 2e7 mentions by authors with 1e12 followers add up to
    with pytest.raises(TypeError):
        e.snapshot()
    assert e.partitions[0].mark.flushed == -1
    agg.counts[potential] = 5
    snap = e.snapshot()
    keys = {r.key for r in snap.state}
    assert {b"0:b:acme:0:" + str(T0 // 2000).encode(), b"0:c:acme"} <= keys
    assert any(k.startswith(b"0:d:") for k in keys)  # the dedup chunk of the three ids
    assert snap.offsets == {0: 2} and [r.key for r in snap.marks] == [b"0:m"]
    restored = Engine(s, now_ms=Clock(T0))
    restored.restore(0, [(r.key, r.value) for r in snap.state + snap.marks if r.value])
    assert value(restored, s, "social_impressions", "acme", "all", "1m") == 1
    assert value(restored, s, "social_likes", "acme", "all", "1m") == 1
    again = restored.ingest_batch([(0, 3, None, ev(1))])
    assert again.duplicates == 1  # the dedup index came back too


def test_a_wall_clock_jump_ahead_does_not_expire_the_windows() -> None:
    """Expiry follows the event times seen, not a wall clock that jumped 25 h ahead for one
    flush: once it is back, the 24 h window still counts what it held."""
    clock = Clock(T0)
    s = Settings(clock="wall", windows=["5m", "24h"])
    e = Engine(s, now_ms=clock)
    feed(e, ev(1, ts=T0 - 3_600_000), ev(2, ts=T0 - 60_000), ev(3, ts=T0))
    e.snapshot()
    clock.now = T0 + 25 * 3_600_000
    jumped = e.snapshot()
    assert not [r.key for r in jumped.state if r.value is None]  # no tombstone
    clock.now = T0 + 1_000
    assert value(e, s, "social_impressions", "acme", "all", "24h") == 3
    assert value(e, s, "social_impressions", "acme", "all", "5m") == 2


def test_a_wall_clock_jump_back_does_not_reject_valid_events_as_future() -> None:
    clock = Clock(T0)
    s = Settings(clock="wall", windows=["5m"], future_tolerance_seconds=300)
    e = Engine(s, now_ms=clock)
    feed(e, ev(1, ts=T0))
    clock.now = T0 - 3_600_000  # an NTP step back by an hour
    out = e.ingest_batch([(0, 1, None, ev(2, ts=T0 + 1_000)),
                          (0, 2, None, ev(3, ts=T0 + 3_600_000))])  # an hour ahead: future
    assert [d.rejected.reason.value for d in out.rejected] == ["future_timestamp"]
    assert out.applied == {"impression": 1}


@pytest.mark.parametrize("windows", [["1m", "1h"], ["1m", "1h", "24h"], ["5m", "1h", "7d"]])
def test_state_built_with_other_windows_is_refused_not_reinterpreted(windows: list[str]) -> None:
    """Bucket keys carry a window's index: 5m,1h,24h state read with 1m,1h raised IndexError at
    every flush, and with 1m,1h,24h its 5m buckets were read as 1m ones."""
    built = Settings(clock="event", windows=["5m", "1h", "24h"])
    e = Engine(built, now_ms=Clock(T0))
    feed(e, ev(1), ev(2, "like"))
    snap = e.snapshot()
    records = [(r.key, r.value) for r in snap.state + snap.marks if r.value is not None]
    assert b"0:s" in dict(records)
    other = Settings(clock="event", windows=windows)
    with pytest.raises(StateMismatch, match=r"^SOCIALPULSE_WINDOWS is .* but the state of "
                                            r"partition 0 was built with 5m,1h,24h"):
        Engine(other, now_ms=Clock(T0)).restore(0, records)
    same = Engine(built, now_ms=Clock(T0))
    same.restore(0, records)
    assert value(same, built, "social_impressions", "acme", "all", "5m") == 1
    assert b"0:s" not in {r.key for r in same.snapshot().state}  # written once


def test_state_for_another_partition_count_is_refused() -> None:
    built = Settings(clock="event", windows=["1m"], topic_partitions=3)
    e = Engine(built, now_ms=Clock(T0))
    feed(e, ev(1))
    snap = e.snapshot()
    records = [(r.key, r.value) for r in snap.state + snap.marks if r.value is not None]
    grown = Settings(clock="event", windows=["1m"], topic_partitions=6)
    with pytest.raises(StateMismatch, match="has 6 partitions but the state of partition 0 was "
                                            "built for 3"):
        Engine(grown, now_ms=Clock(T0)).restore(0, records)


def test_a_restore_from_the_flushed_state_equals_the_live_engine_at_scale(tmp_path: Any) -> None:
    """A day of 60,000 events from 40,000 users, flushed every 5,000 like the worker, then
    restored from the compacted changelog: every series equal, reach included (its windows are
    unions of coupon-mode bucket sketches, whose estimate depends on the coupons' order)."""
    import random

    s = Settings(data_dir=tmp_path, clock="event")
    rng = random.Random(7)
    day, n = 24 * 3600_000, 60_000
    live = Engine(s, now_ms=lambda: T0 + day)
    changelog: dict[tuple[int, bytes], bytes | None] = {}

    def flush() -> None:
        snap = live.snapshot()
        for p, k, v in (*snap.state, *snap.marks):
            changelog[(p, k)] = v

    for start in range(0, n, 5_000):
        feed(live, *(ev(i, rng.choice(["impression"] * 8 + ["like", "share"]),
                        ts=T0 + i * day // n, account=rng.choice(["acme", "globex"]),
                        platform=rng.choice(["x", "instagram", "facebook"]),
                        user_id=f"u{rng.randrange(40_000)}")
                     for i in range(start, start + 5_000)), start=start)
        flush()
    restored = Engine(s, now_ms=lambda: T0 + day)
    for part in {p for p, _ in changelog}:
        restored.restore(part, [(k, v) for (p, k), v in changelog.items()
                                if p == part and v is not None])
    assert compute(restored, s) == compute(live, s)
    assert value(live, s, "social_reach", "acme", "all", "24h") is not None
