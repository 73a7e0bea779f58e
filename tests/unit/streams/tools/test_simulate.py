"""Unit tests of the traffic simulator (streams.tools.simulate) and the producer's Kafka-free parts.

Everything runs in event time from a fixed start, so every stream here is reproducible.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.events import Event, Rejected
from schemas.validate import parse
from streams.settings import Settings
from streams.tools.produce import KafkaUnavailable, produce_events, read_jsonl
from streams.tools.simulate import (
    DEFAULT_MIX,
    ENGAGEMENT_TYPES,
    SimulationConfig,
    Simulator,
)

# 2023-11-14T12:00:00Z: a fixed start away from the evening peak, so shape effects are moderate.
START_MS = 1_699_963_200_000
HOUR_S = 3600.0


def generate(scenario: str = "normal", *, duration_s: float = HOUR_S, rate: float = 50.0,
             seed: int = 7, **cfg: Any) -> list[dict[str, Any] | bytes]:
    sim = Simulator(SimulationConfig(seed=seed, scenario=scenario, **cfg))  # type: ignore[arg-type]
    return list(sim.events(START_MS, duration_s=duration_s, rate=rate))


def dicts(records: Iterable[dict[str, Any] | bytes]) -> list[dict[str, Any]]:
    return [r for r in records if isinstance(r, dict)]


def ts_ms(ts: int | str) -> int:
    if isinstance(ts, int):
        return ts
    return int(datetime.fromisoformat(ts).timestamp() * 1000 + 0.5)


@pytest.fixture(scope="module")
def normal() -> list[dict[str, Any] | bytes]:
    return generate("normal")


# --- determinism and time -------------------------------------------------------------------------


def test_same_seed_same_stream_and_other_seed_differs() -> None:
    first = generate(duration_s=600)
    assert first == generate(duration_s=600)
    assert first != generate(duration_s=600, seed=8)


def test_count_is_exact_and_ts_never_goes_back() -> None:
    sim = Simulator(SimulationConfig(seed=1))
    records = list(sim.events(START_MS, count=20_000, rate=500.0))
    assert len(records) == 20_000
    stamps = [ts_ms(r["ts"]) for r in dicts(records)]
    assert stamps[0] >= START_MS
    assert all(a <= b for a, b in itertools.pairwise(stamps))


def test_duration_bounds_event_time_and_rate_is_the_daily_mean() -> None:
    # A flat curve: the count over a duration is rate x duration (Poisson noise aside).
    records = generate(duration_s=600, rate=200.0, daily_amplitude=0.0)
    stamps = [ts_ms(r["ts"]) for r in dicts(records)]
    assert min(stamps) >= START_MS and max(stamps) < START_MS + 600_000
    assert 0.95 * 120_000 < len(records) < 1.05 * 120_000


def test_chunked_calls_continue_the_same_stream() -> None:
    whole = generate(duration_s=300)
    sim = Simulator(SimulationConfig(seed=7))
    chunked: list[dict[str, Any] | bytes] = []
    start = START_MS
    for _ in range(3):
        chunked += sim.events(start, duration_s=100, rate=50.0)
        assert sim.clock_ms == start + 100_000
        start = sim.clock_ms
    assert chunked == whole


def test_traffic_follows_the_time_of_day() -> None:
    cfg = {"daily_amplitude": 0.6, "peak_hour_utc": 20.0}
    sim = Simulator(SimulationConfig(seed=3, **cfg))  # type: ignore[arg-type]
    day_start = START_MS - 12 * 3_600_000  # midnight UTC
    per_hour = Counter(
        (ts_ms(r["ts"]) - day_start) // 3_600_000
        for r in dicts(sim.events(day_start, duration_s=86_400, rate=5.0))
    )
    assert per_hour[20] > 3 * per_hour[8]  # 1.6 vs 0.4 of the mean


# --- contract ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["normal", "engagement-drop", "slow-replies", "bad-input"])
def test_every_dict_event_passes_validation(scenario: str) -> None:
    records = generate(scenario, duration_s=1200, rate=100.0)
    events = dicts(records)
    now_ms = max(ts_ms(e["ts"]) for e in events)
    for event in events:
        parsed = parse(orjson.dumps(event), now_ms=now_ms)
        assert isinstance(parsed, Event), (parsed, event)
        assert parsed.ts == ts_ms(event["ts"])
        assert parsed.account == event["account"]


def test_event_ids_are_unique_and_both_ts_forms_occur(normal: list[Any]) -> None:
    events = dicts(normal)
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == len(ids)
    rfc = sum(isinstance(e["ts"], str) for e in events) / len(events)
    assert 0.03 < rfc < 0.07
    assert any(e["ts"].endswith("Z") for e in events if isinstance(e["ts"], str))
    assert any("+02:00" in e["ts"] for e in events if isinstance(e["ts"], str))


def test_mix_is_realistic(normal: list[Any]) -> None:
    events = dicts(normal)
    types = Counter(e["type"] for e in events)
    n = len(events)
    assert set(types) == set(DEFAULT_MIX) | {"reply", "followers", "spend"}
    assert 0.65 < types["impression"] / n < 0.76
    assert 0.09 < types["like"] / n < 0.16
    assert 0.01 <= types["click"] / types["impression"] <= 0.02
    impressions = [e for e in events if e["type"] == "impression"]
    paid = [e for e in impressions if e["paid"]]
    assert 0.10 <= len(paid) / len(impressions) <= 0.20
    assert all("campaign" in e for e in paid)
    comments = [e for e in events if e["type"] == "comment"]
    assert 0.15 < sum(e["needs_response"] for e in comments) / len(comments) < 0.25
    sentiments = [e["sentiment"] for e in events if "sentiment" in e]
    assert all(-1 <= s <= 1 for s in sentiments)
    assert min(sentiments) < -0.25 < 0.25 < max(sentiments)
    # Mentions of every account, competitors included (share of voice needs them).
    mentioned = {e["account"] for e in events if e["type"] == "mention"}
    assert mentioned == set(SimulationConfig().accounts)
    # Heavy-tailed sharer audiences: the top sharer reaches far more than the median one.
    audiences = [e["author_followers"] for e in events
                 if e["type"] == "share" and "author_followers" in e]
    assert max(audiences) > 100 * statistics.median(audiences)
    for e in events:
        if e["type"] == "visit":
            assert e["pages"] >= 1 and (e["pages"] == 1) == e["bounced"]
        elif e["type"] == "purchase":
            assert e["amount"] > 0 and e["currency"] == "EUR" and e["user_id"]
        elif e["type"] == "survey":
            assert (1 <= e["score"] <= 5) if e["survey"] == "csat" else (0 <= e["score"] <= 10)
        elif e["type"] == "review":
            assert 1 <= e["rating"] <= 5


def test_periodic_followers_and_spend(normal: list[Any]) -> None:
    sim = Simulator(SimulationConfig(seed=7))
    events = dicts(normal)
    snapshots = [e for e in events if e["type"] == "followers"]
    # One per account and platform every 5 minutes, the first at the start.
    assert len(snapshots) == len(sim.accounts) * len(sim.platforms) * 12
    assert all(e["count"] >= 0 for e in snapshots)
    spend = [e for e in events if e["type"] == "spend"]
    assert len(spend) == len(sim.accounts) * 3 * 59  # one per campaign each minute after the first
    assert all(e["amount"] >= 0 and e["currency"] == "EUR" and e["campaign"] for e in spend)
    # Priced for a CPM near 8 over all of an account's impressions.
    acme_spend = sum(e["amount"] for e in spend if e["account"] == "acme")
    acme_impressions = sum(1 for e in events
                           if e["type"] == "impression" and e["account"] == "acme")
    assert 5 < acme_spend / acme_impressions * 1000 < 12


def test_generated_accounts_and_markets() -> None:
    cfg = SimulationConfig(extra_accounts=25, market="coffee")
    assert cfg.account_names()[:5] == ["acme", "globex", "initech", "umbrella", "brand-0001"]
    assert cfg.markets()["brand-0025"] == "coffee"
    accounts = {e["account"] for e in dicts(Simulator(cfg).events(START_MS, duration_s=600))}
    assert len(accounts) > 15


@pytest.mark.parametrize("bad", [
    {"scenario": "panic"}, {"accounts": ("Acme",)}, {"currency": "euro"},
    {"target_account": "nobody"}, {"mix": {"reply": 1.0}}, {"paid_fraction": 1.5},
])
def test_invalid_config_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**bad)


# --- replies ----------------------------------------------------------------------------------


def reply_delays(
    records: Iterable[dict[str, Any] | bytes], account: str
) -> tuple[list[float], int]:
    """Reply delays (s) for ``account`` and how many of its messages needed a response."""
    events = dicts(records)
    by_id = {e["event_id"]: e for e in events}
    needing = sum(1 for e in events if e["account"] == account and e.get("needs_response"))
    delays = [
        (ts_ms(e["ts"]) - ts_ms(by_id[e["in_reply_to"]]["ts"])) / 1000
        for e in events if e["type"] == "reply" and e["account"] == account
    ]
    return delays, needing


def test_replies_answer_earlier_messages_that_need_a_response(normal: list[Any]) -> None:
    events = dicts(normal)
    position = {e["event_id"]: i for i, e in enumerate(events)}
    replies = [e for e in events if e["type"] == "reply"]
    assert len(replies) > 100
    for reply in replies:
        original = events[position[reply["in_reply_to"]]]
        assert original["type"] in ("comment", "mention") and original["needs_response"]
        assert position[original["event_id"]] < position[reply["event_id"]]
        assert ts_ms(original["ts"]) < ts_ms(reply["ts"])
        assert (original["account"], original["platform"]) == (reply["account"], reply["platform"])
    assert len({r["in_reply_to"] for r in replies}) == len(replies)  # one answer per message
    delays, needing = reply_delays(normal, "acme")
    assert 4 * 60 < statistics.median(delays) < 20 * 60
    # Most are answered; those near the end of the hour have not been yet.
    assert len(delays) / needing > 0.6


def test_slow_replies_raise_the_targets_reply_delay() -> None:
    # Long enough for 3-hour answers to arrive; a low rate keeps the test fast.
    normal = generate("normal", duration_s=8 * HOUR_S, rate=4.0)
    slow = generate("slow-replies", duration_s=8 * HOUR_S, rate=4.0)
    normal_delays, normal_needing = reply_delays(normal, "acme")
    slow_delays, slow_needing = reply_delays(slow, "acme")
    assert statistics.median(slow_delays) > 6 * statistics.median(normal_delays)
    assert statistics.median(slow_delays) > HOUR_S
    assert len(slow_delays) / slow_needing < 0.7 * len(normal_delays) / normal_needing
    # Competitors keep answering as usual.
    assert statistics.median(reply_delays(slow, "globex")[0]) < HOUR_S


# --- scenarios --------------------------------------------------------------------------------


def engagement_rate(records: Iterable[dict[str, Any] | bytes], account: str) -> tuple[float, int]:
    types = Counter(e["type"] for e in dicts(records) if e["account"] == account)
    return sum(types[t] for t in ENGAGEMENT_TYPES) / types["impression"], types["impression"]


def test_engagement_drop_lowers_the_targets_engagement_rate(normal: list[Any]) -> None:
    drop = generate("engagement-drop")
    normal_rate, normal_impressions = engagement_rate(normal, "acme")
    drop_rate, drop_impressions = engagement_rate(drop, "acme")
    assert 0.05 < drop_rate / normal_rate < 0.15
    assert abs(drop_impressions / normal_impressions - 1) < 0.03  # impressions go on as before
    globex_ratio = engagement_rate(drop, "globex")[0] / engagement_rate(normal, "globex")[0]
    assert 0.9 < globex_ratio < 1.1


def test_scenario_can_start_later() -> None:
    records = generate("engagement-drop", scenario_after_s=1800)
    first = [r for r in dicts(records) if ts_ms(r["ts"]) < START_MS + 1_800_000]
    second = [r for r in dicts(records) if ts_ms(r["ts"]) >= START_MS + 1_800_000]
    assert engagement_rate(second, "acme")[0] < 0.2 * engagement_rate(first, "acme")[0]


def test_bad_input_yields_malformed_bytes_that_validation_rejects() -> None:
    records = generate("bad-input", duration_s=1200, rate=100.0)
    raw = [r for r in records if isinstance(r, bytes)]
    assert 0.03 < len(raw) / len(records) < 0.07
    now_ms = max(ts_ms(e["ts"]) for e in dicts(records))
    reasons: Counter[str] = Counter()
    for record in raw:
        parsed = parse(record, now_ms=now_ms)
        assert isinstance(parsed, Rejected), record[:200]
        reasons[parsed.reason.value] += 1
    assert {"not_json", "not_object", "missing_field", "unknown_type", "bad_slug",
            "future_timestamp", "too_large", "wrong_type", "not_utf8", "out_of_range",
            "bad_currency", "bad_event_id"} <= set(reasons)


def test_duplicates_repeat_an_earlier_event_id_when_asked() -> None:
    events = dicts(generate(duration_s=600, duplicate_fraction=0.01))
    ids = Counter(e["event_id"] for e in events)
    repeated = sum(c - 1 for c in ids.values())
    assert 0.005 * len(events) < repeated < 0.02 * len(events)


def test_generation_is_cheap() -> None:
    # The real figure is far higher (see the module report); this only catches a gross regression.
    sim = Simulator(SimulationConfig(seed=1))
    started = time.perf_counter()
    n = sum(1 for _ in sim.events(START_MS, count=100_000, rate=1000.0))
    assert n / (time.perf_counter() - started) > 30_000


# --- producer helpers (no broker) -------------------------------------------------------------


def test_read_jsonl_passes_invalid_lines_on_as_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"event_id":"e1","account":"acme"}\r\n\nnot json\n[1,2]\n{"a":NaN}\n')
    assert list(read_jsonl(str(path))) == [
        {"event_id": "e1", "account": "acme"}, b"not json", b"[1,2]", b'{"a":NaN}'
    ]
    with pytest.raises(FileNotFoundError):
        read_jsonl(str(tmp_path / "missing.jsonl"))


async def test_unreachable_broker_fails_fast_with_a_clear_error() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        await asyncio.wait_for(produce_events(settings, [{"account": "acme"}]), timeout=30)
    assert time.monotonic() - started < 15


def test_rates_are_validated() -> None:
    sim = Simulator()
    for rate in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            sim.events(START_MS, count=1, rate=rate)
