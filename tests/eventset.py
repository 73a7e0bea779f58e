"""Test input with every hard case: simulated traffic, duplicates, disorder, late and bad records.

Used by the unit oracle test (engine in-process) and by the integration test (real Kafka), so both
check the same kinds of input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from streams.simulate import SimulationConfig, Simulator


@dataclass(frozen=True)
class TestRecord:
    key: bytes | None
    value: bytes


def build(
    *, start_ms: int, count: int, seed: int = 7, rate: float = 20.0, late_ms: int,
    scenario: str = "bad-input",
) -> list[TestRecord]:
    """``count`` simulated records, then: 3 % re-sent later (duplicates), local shuffles
    (out of order), 1 % moved ``late_ms`` into the past (late), and the scenario's bad records."""
    rng = random.Random(seed)
    sim = Simulator(SimulationConfig(seed=seed, scenario=scenario, users=5_000))  # type: ignore[arg-type]
    base: list[TestRecord] = []
    for rec in sim.events(start_ms, count=count, rate=rate):
        if isinstance(rec, bytes):
            base.append(TestRecord(None, rec))
            continue
        if rng.random() < 0.01:
            rec = {**rec, "ts": int(rec["ts"] if isinstance(rec["ts"], int) else start_ms)
                   - late_ms, "event_id": rec["event_id"] + "-late"}
        base.append(TestRecord(rec["account"].encode(), orjson.dumps(rec)))
    # Rare types the traffic mix may not draw in a short run: every KPI family must be checked.
    nps: list[dict[str, object]] = [
        {"type": "survey", "survey": "nps", "score": score} for score in (10, 9, 7, 3)
    ]
    rare: list[dict[str, object]] = [
        *nps,
        {"type": "survey", "survey": "csat", "score": 4},
        {"type": "review", "rating": 5, "user_id": "u-rare"},
        {"type": "purchase", "amount": 19.5, "currency": "EUR", "user_id": "u-rare",
         "campaign": "coverage"},
        {"type": "spend", "amount": 3.0, "currency": "EUR", "campaign": "coverage"},
        {"type": "click", "campaign": "coverage"},
        {"type": "impression", "campaign": "coverage", "user_id": "u-rare"},
        {"type": "visit", "pages": 3, "bounced": False, "duration_seconds": 42.0},
    ]
    for i, fields in enumerate(rare):
        extra = {"event_id": f"rare-{seed}-{i}", "ts": start_ms + 1000 * i, "account": "acme",
                 "platform": "web", **fields}
        base.append(TestRecord(b"acme", orjson.dumps(extra)))
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
