"""Simulated traffic for the benchmark: preloads over recent event time, live traffic, probes.

Everything comes from ``streams.tools.simulate.Simulator`` (the realistic mix of types, accounts of
heavy-tailed sizes, skewed user activity, replies, periodic records). A ``Census`` counts what was
actually produced (types, accounts, distinct users), so the report states the real shape rather
than the configured one.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from xxhash import xxh3_64_intdigest

from bench.sizes import Sizes
from streams.tools.produce import EventInput
from streams.tools.simulate import SimulationConfig, Simulator

PROBE_ACCOUNT = "bench-probe"
PROBE_PLATFORM = "probe"
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000


def sim_config(sizes: Sizes, extra_accounts: int, seed: int = 42, users: int | None = None,
               duplicate_fraction: float = 0.0) -> SimulationConfig:
    """The simulated world of a phase: ``4 + extra_accounts`` accounts on ``sizes.platforms``."""
    return SimulationConfig(
        seed=seed,
        extra_accounts=extra_accounts,
        users=users or sizes.users,
        duplicate_fraction=duplicate_fraction,
        platforms=sizes.platforms,
        followers_interval_s=sizes.periodic_interval_s,
        spend_interval_s=sizes.periodic_interval_s,
    )


def mean_shape(cfg: SimulationConfig, start_ms: float, end_ms: float) -> float:
    """Mean of the simulator's daily traffic curve over [start, end), sampled each minute."""
    steps = max(1, int((end_ms - start_ms) // 60_000))
    total = 0.0
    for i in range(steps):
        t = start_ms + (i + 0.5) * (end_ms - start_ms) / steps
        hour = (t % _MS_PER_DAY) / _MS_PER_HOUR
        total += 1.0 + cfg.daily_amplitude * math.cos(
            2 * math.pi * (hour - cfg.peak_hour_utc) / 24)
    return total / steps


class Census:
    """What a stream of records held: types, accounts, distinct users."""

    def __init__(self, users: int, distinct: bool = False) -> None:
        self.records = 0
        self.types: Counter[str] = Counter()
        # ``distinct``: also count each type's distinct (account, event_id), the counts an exact
        # pipeline applies (the rest are duplicates), by a 64-bit hash of each id.
        self._ids: set[int] | None = set() if distinct else None
        self.distinct_types: Counter[str] = Counter()
        self.duplicates = 0
        self.accounts: set[str] = set()
        self.platforms: set[str] = set()
        self._seen = bytearray(users)
        self.distinct_users = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def see(self, rec: dict[str, Any]) -> None:
        self.records += 1
        self.types[rec["type"]] += 1
        if self._ids is not None:
            h = xxh3_64_intdigest(f"{rec['account']}\x00{rec['event_id']}".encode())
            if h in self._ids:
                self.duplicates += 1
            else:
                self._ids.add(h)
                self.distinct_types[rec["type"]] += 1
        self.accounts.add(rec["account"])
        self.platforms.add(rec["platform"])
        user = rec.get("user_id")
        if user is not None and user[0] == "u":
            i = int(user[1:])
            if not self._seen[i]:
                self._seen[i] = 1
                self.distinct_users += 1
        ts = rec["ts"]
        if type(ts) is int:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts

    def as_dict(self) -> dict[str, Any]:
        span = ((self.last_ts - self.first_ts) / 1000.0
                if self.first_ts is not None and self.last_ts is not None else 0.0)
        return {
            "records": self.records,
            "accounts": len(self.accounts),
            "platforms": sorted(self.platforms),
            "distinct_users": self.distinct_users,
            "event_time_span_s": round(span, 1),
            "types": dict(self.types.most_common()),
        }


def preload_records(
    cfg: SimulationConfig, count: int, span_s: float, now_ms: int, census: Census
) -> Iterator[EventInput]:
    """About ``count`` records whose ``ts`` spreads over the ``span_s`` seconds before now."""
    start = now_ms - int(span_s * 1000)
    # The periodic records (followers snapshots per account and platform, spend per campaign)
    # come on top of the random arrivals: leave room for them so the stream fills the span.
    n_accounts = len(cfg.account_names())
    periodic = (span_s / cfg.followers_interval_s + 1) * n_accounts * len(cfg.platforms)
    periodic += span_s / cfg.spend_interval_s * n_accounts * cfg.campaigns_per_account
    random_count = max(count * 0.1, count - periodic)
    rate = random_count / span_s / mean_shape(cfg, start, now_ms)
    sim = Simulator(cfg)
    for rec in sim.events(start, count=count, duration_s=span_s, rate=rate):
        if isinstance(rec, dict):
            census.see(rec)
        yield rec


class ProbeLog:
    """Probe events sent by ``live_records``: index k (1-based) was sent at ``sent[k - 1]``."""

    def __init__(self, run: str, period_s: float, start_at: float,
                 account: str = PROBE_ACCOUNT) -> None:
        self.run = run
        self.account = account
        self.period_s = period_s
        self.sent: list[float] = []
        self.next_at = start_at  # wall clock (time.time) of the first probe

    def due(self, now: float) -> bool:
        if now < self.next_at:
            return False
        self.next_at += self.period_s
        return True

    def make(self, wall: float) -> dict[str, Any]:
        k = len(self.sent) + 1
        self.sent.append(wall)
        return {
            "event_id": f"{self.run}-probe-{k}", "type": "impression", "ts": int(wall * 1000),
            "account": self.account, "platform": PROBE_PLATFORM, "user_id": f"probe-{k}",
            "paid": False,
        }


def live_records(
    cfg: SimulationConfig,
    stop: Callable[[], bool],
    probes: ProbeLog | None = None,
    census: Census | None = None,
) -> Iterator[EventInput]:
    """Endless simulated traffic whose ``ts`` is the wall clock at the moment it is handed out.

    The caller paces it (``produce_events(rate=...)``) and ends it with ``stop``. Probes are
    interleaved every ``probes.period_s`` seconds, stamped with the time they are handed to the
    producer.
    """
    sim = Simulator(cfg)
    clock = time.time
    for rec in sim.events(int(clock() * 1000)):
        if stop():
            return
        now = clock()
        if probes is not None and probes.due(now):
            yield probes.make(now)
        if isinstance(rec, dict):
            rec["ts"] = int(now * 1000)
            if census is not None:
                census.see(rec)
        yield rec
