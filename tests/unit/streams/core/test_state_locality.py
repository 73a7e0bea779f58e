"""One account's state in one place (issue #12): admission per partition, replayed from state;
caps that bound the deployment and free after the horizon; followers per account and platform;
duplicates scoped by account. Keys and the repartition hop: test_engine_oracle.py and
tests/integration/test_record_keys.py."""

from __future__ import annotations

from typing import Any

import orjson

from streams.core.engine import Engine
from streams.core.series import compute
from streams.settings import Settings

T0 = 1_800_000_000_000


def ev(n: int | str, account: str = "acme", etype: str = "impression", ts: int = T0,
       platform: str = "x", **fields: Any) -> bytes:
    return orjson.dumps({"event_id": str(n), "type": etype, "ts": ts, "account": account,
                         "platform": platform, **fields})


def series(e: Engine, s: Settings) -> dict[str, dict[tuple[str, ...], float]]:
    return {name: dict(rows) for name, rows in compute(e, s).items()}


def changelog_of(e: Engine) -> dict[int, list[tuple[bytes, bytes]]]:
    snap = e.snapshot()
    out: dict[int, list[tuple[bytes, bytes]]] = {}
    for p, k, v in snap.state + snap.marks:
        if v is not None:
            out.setdefault(p, []).append((k, v))
    return out


def test_admission_is_decided_per_partition_and_replayed_after_a_takeover() -> None:
    """Partitions 0 and 1 hold one slot each. A worker owning both admits acme (partition 0)
    and hooli (partition 1), then sees c's two events (partition 0, no slot left there): they
    count under "_other". The worker dies before flushing them; the one taking over partition 0
    alone replays them from the committed offset and must decide the same (before: it counted
    accounts over its own partitions, found a free slot, and exported c)."""
    s = Settings(clock="event", windows=["1m"], max_accounts=2, topic_partitions=2)
    first = Engine(s, now_ms=lambda: T0 + 3_600_000)
    first.ingest_batch([(0, 0, b"acme", ev(1)), (1, 0, b"hooli", ev(2, "hooli"))])
    flushed = changelog_of(first)
    first.ingest_batch([(0, 1, b"c", ev(3, "c")), (0, 2, b"c", ev(4, "c"))])
    assert series(first, s)["social_impressions"][("_other", "all", "1m")] == 2
    second = Engine(s, now_ms=lambda: T0 + 3_600_000)
    second.restore(0, flushed[0])
    second.ingest_batch([(0, 1, b"c", ev(3, "c")), (0, 2, b"c", ev(4, "c"))])
    got = series(second, s)["social_impressions"]
    assert got[("_other", "all", "1m")] == 2
    assert ("c", "all", "1m") not in got


def test_the_account_cap_is_split_over_the_partitions() -> None:
    """Four slots over four partitions: one per partition, however the workers own them."""
    s = Settings(clock="event", windows=["1m"], max_accounts=4, topic_partitions=4)
    e = Engine(s, now_ms=lambda: T0 + 3_600_000)
    # acme, rival, brand: partition 0; hooli: 1; c: 2; globex: 3
    names = ["acme", "rival", "brand", "hooli", "c", "globex"]
    e.ingest_batch([(p, i, None, ev(i, a)) for i, (p, a) in
                    enumerate((0, a) for a in names)])
    assert e.accounts() == ["_other", "acme", "c", "globex", "hooli"]


def test_a_quiet_account_frees_its_slot_after_the_horizon_and_keeps_its_lifetime_state() -> None:
    s = Settings(clock="event", windows=["1m"], grace_seconds=0, max_accounts=4,
                 topic_partitions=4)  # partition 0: one slot
    e = Engine(s, now_ms=lambda: T0 + 3_600_000)
    e.ingest_batch([(0, 0, b"acme", ev(1, etype="followers", count=100)),
                    (0, 1, b"rival", ev(2, "rival"))])
    assert e.accounts() == ["_other", "acme"]
    later = T0 + 10 * 60_000  # acme quiet for far longer than the 1m window
    e.ingest_batch([(0, 2, b"rival", ev(3, "rival", ts=later)),
                    (0, 3, b"brand", ev(4, "brand", ts=later))])
    e.snapshot()
    # rival's own decision lapsed with its quiet minutes too: the first to ask gets the slot
    assert e.accounts() == ["_other", "rival"]
    e.ingest_batch([(0, 4, b"acme", ev(5, etype="follow", ts=later + 1000))])
    core = e.partitions[0].cores["acme"]
    followers = core.followers["x"].value()
    assert followers == 101  # kept while it had no slot


def test_overflowed_mentions_count_in_their_own_market() -> None:
    """acme holds partition 0's only slot; rival (same market, same partition) overflows. acme's
    share of voice is 1 of 10 mentions, not 1 of 1 (before: rival's nine counted in the default
    market)."""
    s = Settings(clock="event", windows=["1m"], max_accounts=1, topic_partitions=4,
                 markets={"acme": "coffee", "rival": "coffee"})  # partition 0: the one slot
    e = Engine(s, now_ms=lambda: T0 + 3_600_000)
    e.ingest_batch([(0, 0, b"acme", ev("m0", etype="mention")),
                    *((0, i, b"rival", ev(f"m{i}", "rival", etype="mention"))
                      for i in range(1, 10))])
    got = series(e, s)
    assert got["social_share_of_voice_ratio"][("acme", "all", "1m")] == 0.1
    assert ("_other", "all", "1m") not in got["social_share_of_voice_ratio"]


def test_followers_need_a_snapshot_and_sum_per_account_and_platform() -> None:
    s = Settings(clock="event", windows=["1m"], max_accounts=4, topic_partitions=4,
                 max_platforms_per_account=1)
    e = Engine(s, now_ms=lambda: T0 + 3_600_000)
    e.ingest_batch([
        (0, 0, b"acme", ev(1, etype="unfollow")),  # no snapshot: no count, never -1
        (0, 1, b"rival", ev(2, "rival", etype="followers", count=1_000_000)),  # overflows
        (0, 2, b"brand", ev(3, "brand", etype="followers", count=50)),  # overflows too
        (1, 0, b"hooli", ev(4, "hooli", etype="followers", count=17, platform="instagram")),
        (1, 1, b"hooli", ev(5, "hooli", etype="followers", count=5000, platform="facebook")),
    ])
    followers = series(e, s)["social_followers"]
    assert ("acme", "all") not in followers and ("acme", "x") not in followers
    assert followers[("_other", "all")] == 1_000_050
    assert followers[("hooli", "all")] == 5017
    assert followers[("hooli", "instagram")] == 17
    assert followers[("hooli", "_other")] == 5000


def test_follower_deltas_no_window_can_see_are_folded() -> None:
    s = Settings(clock="event", windows=["1m"], grace_seconds=0)
    e = Engine(s, now_ms=lambda: T0 + 3_600_000)
    e.ingest_batch([(0, 0, b"acme", ev(0, etype="followers", count=10, ts=T0 - 1))])
    e.ingest_batch([(0, i, b"acme", ev(i, etype="follow", ts=T0 + i * 1000))
                    for i in range(1, 301)])
    e.snapshot()
    f = e.partitions[0].cores["acme"].followers["x"]
    assert len(f.deltas) <= 61 and f.value() == 310


def test_duplicates_are_scoped_by_account() -> None:
    """Another account in the same partition sends the victim's (predictable) ids first: the
    victim's events still count (before: suppressed as duplicates)."""
    s = Settings(clock="event", windows=["1m"])
    e = Engine(s, now_ms=lambda: T0 + 3_600_000)
    out = e.ingest_batch([(0, 0, b"rival", ev("post-1", "rival")),
                          (0, 1, b"acme", ev("post-1")),
                          (0, 2, b"acme", ev("post-1"))])  # a real retry of acme's
    assert out.duplicates == 1
    assert series(e, s)["social_impressions"][("acme", "all", "1m")] == 1
