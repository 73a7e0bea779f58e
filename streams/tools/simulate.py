"""Deterministic, realistic traffic generator for the socialpulse event contract (SPEC §1).

``Simulator.events()`` yields JSON-ready dicts (and, in the ``bad-input`` scenario, raw ``bytes``
records that break the contract) spread over *event time*: no wall clock is read here, so a seed
and a start time always give the same stream, which is what tests and backfills need.
``streams.tools.produce.simulate_live`` drives the same generator from the wall clock.

The world being simulated:

- a brand (``acme``) and its competitors in one market, plus optional generated accounts
  (``brand-0001`` ...), each with a size that scales all of its traffic;
- events arrive as a Poisson process whose intensity follows a daily curve (peak in the evening
  UTC, trough at night) and averages ``rate`` events per second of event time;
- the type mix is dominated by impressions (about 70 %, 15 % of them paid), then likes, comments,
  shares, saves, clicks (1-2 % of impressions), mentions, audience changes, website visits, leads,
  conversions, purchases, surveys and reviews;
- periodic records: ``followers`` snapshots per account and platform, ``spend`` per campaign
  (priced so that the cost per mille of the account's impressions is about ``cpm``);
- comments and mentions that need a response are answered by a ``reply`` after a lognormal delay
  (median about 10 minutes), kept in a heap until their time comes, so a reply always follows the
  message it answers in the stream and in ``ts``.

Scenarios (``SimulationConfig.scenario``), active from ``scenario_after_s`` seconds of event time
after the first generated event, to show an alert firing after a normal start:

- ``normal``;
- ``engagement-drop``: the target account's likes, comments, shares and saves fall to 10 % while
  its impressions go on unchanged (its engagement rate drops by 90 %);
- ``slow-replies``: the target account answers after a median of about 3 hours, and 45 % of the
  messages needing a response are never answered (its care KPIs and SLA alerts degrade);
- ``bad-input``: about 5 % of the records are malformed ``bytes`` (not JSON, not an object, a
  missing field, an unknown type, a bad slug, a far-future ts, an oversized record, a wrong type,
  a NaN literal, invalid UTF-8, an impossible number, a bad currency, a bad event id).
"""

from __future__ import annotations

import heapq
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

import orjson

Scenario = Literal["normal", "engagement-drop", "slow-replies", "bad-input"]
SCENARIOS: tuple[Scenario, ...] = ("normal", "engagement-drop", "slow-replies", "bad-input")

DEFAULT_ACCOUNTS: tuple[str, ...] = ("acme", "globex", "initech", "umbrella")
DEFAULT_PLATFORMS: tuple[str, ...] = ("instagram", "facebook", "x", "linkedin", "tiktok")

# Relative weights of the randomly arriving types. Replies, followers snapshots and spend are not
# drawn: they are scheduled. With replies added, impressions end up close to 70 % of the stream
# and clicks near 1.8 % of impressions, likes about 13 %.
DEFAULT_MIX: Mapping[str, float] = {
    "impression": 66.0,
    "like": 12.0,
    "comment": 3.0,
    "share": 2.0,
    "save": 1.5,
    "click": 1.2,
    "mention": 2.0,
    "follow": 1.0,
    "unfollow": 0.4,
    "visit": 1.1,
    "lead": 0.15,
    "conversion": 0.1,
    "purchase": 0.035,
    "survey": 0.08,
    "review": 0.05,
}
ENGAGEMENT_TYPES: frozenset[str] = frozenset({"like", "comment", "share", "save"})

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

# How often each platform is the source of a random event, and how large its audience is relative
# to instagram; platforms outside these tables get the fallback values.
_PLATFORM_TRAFFIC = {"instagram": 0.35, "facebook": 0.22, "x": 0.15, "linkedin": 0.10,
                     "tiktok": 0.18}
_PLATFORM_AUDIENCE = {"instagram": 1.0, "facebook": 0.9, "x": 0.5, "linkedin": 0.25,
                      "tiktok": 0.7}
_CAMPAIGN_NAMES = ("spring-sale", "brand-awareness", "retargeting", "product-launch",
                   "holiday-promo", "lead-gen", "app-installs", "always-on")
_GOALS = (("signup", 0.55), ("download", 0.35), ("newsletter", 0.10))
_CSAT_SCORES = ((5, 0.40), (4, 0.30), (3, 0.15), (2, 0.08), (1, 0.07))
_NPS_SCORES = tuple(zip(range(11), (2, 1, 1, 2, 2, 4, 5, 10, 18, 25, 30), strict=True))
_RATINGS = ((5, 0.50), (4, 0.20), (3, 0.10), (2, 0.07), (1, 0.13))  # J-shaped, as real reviews
# Offsets used for the RFC 3339 form of ts: producers in other time zones are the usual case.
_OFFSETS = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)),
            timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))

# Lookup tables make a weighted draw one multiply and one index (random.choices costs ~1 µs).
_TYPE_TABLE_SIZE = 1 << 16
_SMALL_TABLE_SIZE = 1 << 12
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000
# The arrival intensity is re-evaluated once per minute of event time: the daily curve is smooth.
_SHAPE_STEP_MS = 60_000
_TEN_YEARS_MS = 10 * 365 * _MS_PER_DAY

# Heap entry kinds: a reply, the periodic ticks, and the records a tick expands into.
_REPLY, _FOLLOWERS_TICK, _SPEND_TICK, _FOLLOWERS, _SPEND = range(5)

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_MIX",
    "DEFAULT_PLATFORMS",
    "ENGAGEMENT_TYPES",
    "SCENARIOS",
    "Scenario",
    "SimulationConfig",
    "Simulator",
]

T = TypeVar("T")


def _table(pairs: Sequence[tuple[T, float]], size: int) -> list[T]:
    """A list of ``size`` items where each item fills a share of slots equal to its weight."""
    total = sum(w for _, w in pairs)
    if total <= 0:
        raise ValueError("weights must add up to more than 0")
    out: list[T] = []
    acc = 0.0
    for item, weight in pairs:
        if weight < 0:
            raise ValueError(f"negative weight for {item!r}")
        acc += weight
        out.extend([item] * (round(acc / total * size) - len(out)))
    return out


def _rfc3339(ms: int, tz: timezone) -> str:
    """``ms`` as RFC 3339 with millisecond precision in zone ``tz`` (``Z`` for UTC)."""
    # Built from whole seconds plus exact milliseconds: ms / 1000 as a float can round.
    dt = datetime.fromtimestamp(ms // 1000, tz).replace(microsecond=(ms % 1000) * 1000)
    text = dt.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if tz is UTC else text


@dataclass
class SimulationConfig:
    """What to simulate. Every field has a realistic default; only ``seed`` usually changes."""

    seed: int = 42
    # The first account is the brand; the others are its competitors in the same market.
    accounts: tuple[str, ...] = DEFAULT_ACCOUNTS
    # Extra generated accounts brand-0001 ... (smaller, heavy-tailed sizes), e.g. for load tests.
    extra_accounts: int = 0
    market: str = "default"
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    campaigns_per_account: int = 3
    posts_per_account: int = 40
    users: int = 100_000
    currency: str = "EUR"
    scenario: Scenario = "normal"
    # Seconds of event time after the first event before the scenario starts.
    scenario_after_s: float = 0.0
    # The account a scenario degrades; None means the brand (the first account).
    target_account: str | None = None
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    paid_fraction: float = 0.15
    rfc3339_fraction: float = 0.05
    malformed_fraction: float = 0.05
    # Re-emit an earlier record with the same event_id (a producer retry), to exercise dedup.
    duplicate_fraction: float = 0.0
    # Traffic is rate x (1 + amplitude x cos(2 pi (hour - peak) / 24)); 0 gives a flat rate.
    daily_amplitude: float = 0.6
    peak_hour_utc: float = 20.0
    followers_interval_s: float = 300.0
    spend_interval_s: float = 60.0
    cpm: float = 8.0
    reply_median_s: float = 600.0
    slow_reply_median_s: float = 3 * 3600.0
    huge_record_bytes: int = 70_000
    # Replies waiting in the heap beyond this are dropped (never answered): bounds memory in
    # long fast backfills of slow-replies.
    max_pending_replies: int = 1_000_000

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}: {self.scenario!r}")
        if not self.accounts:
            raise ValueError("at least one account is needed")
        for slug in (*self.accounts, *self.platforms, self.market):
            if not _SLUG.match(slug):
                raise ValueError(f"not a slug: {slug!r}")
        if len(set(self.accounts)) != len(self.accounts):
            raise ValueError("accounts must be distinct")
        if not self.platforms:
            raise ValueError("at least one platform is needed")
        if not _CURRENCY.match(self.currency):
            raise ValueError(f"currency must be an ISO 4217 code: {self.currency!r}")
        if self.target_account is not None and self.target_account not in self.account_names():
            raise ValueError(f"target_account is not simulated: {self.target_account!r}")
        unknown = set(self.mix) - set(DEFAULT_MIX)
        if unknown:
            raise ValueError(f"mix has types that are drawn at random: {sorted(unknown)}")
        if self.users < 1 or self.posts_per_account < 1 or self.extra_accounts < 0:
            raise ValueError("users and posts_per_account must be >= 1, extra_accounts >= 0")
        if self.campaigns_per_account < 0:
            raise ValueError("campaigns_per_account must be >= 0")
        for name in ("paid_fraction", "rfc3339_fraction", "malformed_fraction",
                     "duplicate_fraction", "daily_amplitude"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1: {value}")
        for name in ("followers_interval_s", "spend_interval_s", "reply_median_s",
                     "slow_reply_median_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    def account_names(self) -> list[str]:
        """All simulated accounts: the configured ones, then brand-0001 ... brand-NNNN."""
        return [*self.accounts, *(f"brand-{i:04d}" for i in range(1, self.extra_accounts + 1))]

    @property
    def target(self) -> str:
        return self.target_account or self.accounts[0]

    def markets(self) -> dict[str, str]:
        """account -> market, in the form ``Settings.markets`` takes."""
        return {name: self.market for name in self.account_names()}


@dataclass(frozen=True, slots=True)
class _Campaign:
    slug: str
    platform: str
    ads: tuple[str, ...]
    # Share of the account's spend; differs between campaigns as real budgets do.
    budget_share: float


class Simulator:
    """A seeded simulated world that emits SPEC §1 events in event-time order.

    Successive ``events()`` calls continue the same world (event ids, pending replies, follower
    counts): pass the ``clock_ms`` of the previous call as the next ``start_ms`` to get a seamless
    stream. A start elsewhere restarts the arrivals there; scheduled replies keep their times.
    """

    def __init__(self, config: SimulationConfig | None = None) -> None:
        self.config = cfg = config or SimulationConfig()
        self._rng = rng = random.Random(cfg.seed)
        self._random = rng.random
        self.accounts: list[str] = cfg.account_names()
        self.platforms: list[str] = list(cfg.platforms)
        self._target_ai = self.accounts.index(cfg.target)

        # Account sizes: the configured accounts shrink with their position (the brand is the
        # largest), the generated ones are small with a heavy tail.
        sizes = [1.0 / (1.0 + 0.6 * i) for i in range(len(cfg.accounts))]
        sizes += [min(0.5, 0.05 * rng.paretovariate(1.3)) for _ in range(cfg.extra_accounts)]
        total_size = sum(sizes)
        self._account_share = [s / total_size for s in sizes]
        # Enough slots that even the smallest of thousands of generated accounts gets some.
        self._account_slots = max(_SMALL_TABLE_SIZE, 64 * len(sizes))
        self._account_table = _table(list(enumerate(sizes)), self._account_slots)
        self._platform_table = _table(
            [(pi, _PLATFORM_TRAFFIC.get(p, 0.15)) for pi, p in enumerate(self.platforms)],
            _SMALL_TABLE_SIZE,
        )

        self._users = [f"u{i:06d}" for i in range(cfg.users)]
        self._posts = [[f"{a}-p{k:04d}" for k in range(cfg.posts_per_account)]
                       for a in self.accounts]
        self._campaigns: list[list[_Campaign]] = []
        for a in self.accounts:
            camps = []
            for k in range(cfg.campaigns_per_account):
                slug = _CAMPAIGN_NAMES[k] if k < len(_CAMPAIGN_NAMES) else f"campaign-{k:02d}"
                platform = self.platforms[rng.randrange(len(self.platforms))]
                ads = tuple(f"{a}-{slug}-ad{j}" for j in range(3))
                camps.append(_Campaign(slug, platform, ads, rng.uniform(0.5, 2.0)))
            share_total = sum(c.budget_share for c in camps) or 1.0
            self._campaigns.append([
                _Campaign(c.slug, c.platform, c.ads, c.budget_share / share_total) for c in camps
            ])
        # Follower counts per account and platform, kept in step with follow/unfollow events so
        # that the periodic snapshots agree with the stream.
        self._followers = [
            [max(10, int(200_000 * size * _PLATFORM_AUDIENCE.get(p, 0.5)
                         * rng.lognormvariate(0.0, 0.3))) for p in self.platforms]
            for size in sizes
        ]
        # Competitors answer at their own pace around the configured median; the target keeps
        # exactly the configured median so that scenarios compare cleanly with normal.
        self._reply_median = [cfg.reply_median_s * (1.0 if ai == self._target_ai
                                                    else rng.uniform(0.6, 2.5))
                              for ai in range(len(self.accounts))]

        mix = {t: w for t, w in cfg.mix.items() if w > 0}
        handlers: dict[str, Callable[[str, int | str, float, int, int], dict[str, Any]]] = {
            "impression": self._impression, "like": self._like, "save": self._save,
            "comment": self._comment, "share": self._share, "click": self._click,
            "mention": self._mention, "follow": self._follow, "unfollow": self._unfollow,
            "visit": self._visit, "lead": self._lead, "conversion": self._conversion,
            "purchase": self._purchase, "survey": self._survey, "review": self._review,
        }
        self._type_table = _table(
            [((handlers[t], t in ENGAGEMENT_TYPES), w) for t, w in mix.items()],
            _TYPE_TABLE_SIZE,
        )
        self._impression_share = mix.get("impression", 0.0) / sum(mix.values())
        self._goal_table = _table(_GOALS, _SMALL_TABLE_SIZE)
        self._csat_table = _table(_CSAT_SCORES, _SMALL_TABLE_SIZE)
        self._nps_table = _table(_NPS_SCORES, _SMALL_TABLE_SIZE)
        self._rating_table = _table(_RATINGS, _SMALL_TABLE_SIZE)

        self._engagement_drop = cfg.scenario == "engagement-drop"
        self._slow_replies = cfg.scenario == "slow-replies"
        self._bad_input = cfg.scenario == "bad-input"

        # Mutable world state.
        self._n = 0  # records emitted so far; makes event ids unique
        self._seq = 0  # heap tie-breaker
        self._heap: list[tuple[float, int, int, tuple[Any, ...]]] = []
        self._pending_replies = 0
        self._prefix = ""
        self._started = False
        self._scenario_from = math.inf
        self._now = 0.0
        self._call_start = 0.0
        self._next_arrival: float | None = None
        self._rate = 100.0
        self._gap_minute = -1
        self._gap_mean_ms = 10.0
        self._recent: deque[dict[str, Any]] = deque(maxlen=512)

    # --- public ---------------------------------------------------------------------------------

    @property
    def clock_ms(self) -> int:
        """Event time reached so far: the ``start_ms`` that continues the stream seamlessly."""
        return int(self._now)

    def events(
        self,
        start_ms: int,
        count: int | None = None,
        duration_s: float | None = None,
        rate: float = 100.0,
    ) -> Iterator[dict[str, Any] | bytes]:
        """Yield events from ``start_ms`` on, ``rate`` per second of event time on daily average.

        Stops after ``count`` records or when event time reaches ``start_ms + duration_s``,
        whichever comes first; with neither, the stream is endless. Records are dicts ready for
        ``orjson.dumps`` and, in the ``bad-input`` scenario, malformed ``bytes``.
        """
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number: {rate}")
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0: {count}")
        if duration_s is not None and not duration_s >= 0:
            raise ValueError(f"duration_s must be >= 0: {duration_s}")
        end = math.inf if duration_s is None else start_ms + duration_s * 1000.0
        return self._generate(int(start_ms), count, end, float(rate))

    # --- generation loop -------------------------------------------------------------------------

    def _generate(
        self, start_ms: int, count: int | None, end: float, rate: float
    ) -> Iterator[dict[str, Any] | bytes]:
        if rate != self._rate:
            self._rate = rate
            self._gap_minute = -1  # re-evaluate the mean gap at the new rate
        self._call_start = float(start_ms)
        if not self._started:
            self._start(start_ms)
        # Within a millisecond of where the last call stopped counts as a continuation: a
        # duration's end is a float and may fall a hair before or after the integer start.
        if self._next_arrival is None or abs(start_ms - self._now) >= 1.0:
            self._now = float(start_ms)
            self._next_arrival = start_ms + self._gap(float(start_ms))
        heap = self._heap
        remaining = -1 if count is None else count
        while remaining != 0:
            t = self._next_arrival
            rec: dict[str, Any] | bytes | None
            if heap and heap[0][0] <= t:
                due = heap[0][0]
                if due >= end:
                    break
                rec = self._scheduled(heapq.heappop(heap))
                self._now = due
            else:
                if t >= end:
                    break
                self._next_arrival = t + self._gap(t)
                self._now = t
                rec = self._arrival(t)
            if rec is not None:
                yield rec
                remaining -= 1
        if end != math.inf and remaining != 0:
            # Ran to the end of the window: the next window starts exactly here.
            self._now = end

    def _start(self, start_ms: int) -> None:
        self._started = True
        # Seed and start make the ids unique across runs, so that a restarted live simulator is
        # not deduplicated against its previous run, yet reproducible for a given call.
        self._prefix = f"sim{self.config.seed}-{start_ms:x}-"
        self._scenario_from = start_ms + self.config.scenario_after_s * 1000.0
        self._push(float(start_ms), _FOLLOWERS_TICK, ())
        self._push(start_ms + self.config.spend_interval_s * 1000.0, _SPEND_TICK, ())

    def _push(self, due: float, kind: int, payload: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, kind, payload))

    def _gap(self, t: float) -> float:
        """Milliseconds to the next random arrival: exponential around the daily-curve mean."""
        minute = int(t // _SHAPE_STEP_MS)
        if minute != self._gap_minute:
            self._gap_minute = minute
            self._gap_mean_ms = 1000.0 / (self._rate * self._shape(t))
        # 1 - random() is in (0, 1], so the log is finite.
        return -math.log(1.0 - self._random()) * self._gap_mean_ms

    def _shape(self, t: float) -> float:
        """Traffic level at event time ``t`` relative to the daily mean (averages 1 over a day)."""
        cfg = self.config
        hour = (t % _MS_PER_DAY) / _MS_PER_HOUR
        return 1.0 + cfg.daily_amplitude * math.cos(2 * math.pi * (hour - cfg.peak_hour_utc) / 24)

    def _next_id(self) -> str:
        n = self._n
        self._n = n + 1
        return self._prefix + str(n)

    def _ts(self, t: float) -> int | str:
        ms = int(t)
        if self._random() >= self.config.rfc3339_fraction:
            return ms
        return _rfc3339(ms, _OFFSETS[ms % len(_OFFSETS)])

    def _arrival(self, t: float) -> dict[str, Any] | bytes | None:
        """One randomly arriving record at event time ``t``, or None if the scenario drops it."""
        rnd = self._random
        handler, engaging = self._type_table[int(rnd() * _TYPE_TABLE_SIZE)]
        ai = self._account_table[int(rnd() * self._account_slots)]
        if t >= self._scenario_from:
            # The dropped engagement still took its slot in time, so the target's impressions
            # (and everyone else's traffic) keep the rate they have in the normal scenario.
            if (self._engagement_drop and engaging and ai == self._target_ai
                    and rnd() >= 0.1):
                return None
            if self._bad_input and rnd() < self.config.malformed_fraction:
                return self._malformed(t, ai)
        if self.config.duplicate_fraction and self._recent \
                and rnd() < self.config.duplicate_fraction:
            return self._recent[int(rnd() * len(self._recent))]
        pi = self._platform_table[int(rnd() * _SMALL_TABLE_SIZE)]
        rec = handler(self._next_id(), self._ts(t), t, ai, pi)
        if self.config.duplicate_fraction:
            self._recent.append(rec)
        return rec

    def _scheduled(self, item: tuple[float, int, int, tuple[Any, ...]]) -> dict[str, Any] | None:
        due, _, kind, payload = item
        if kind == _REPLY:
            self._pending_replies -= 1
            ai, pi, post_id, in_reply_to, resolved = payload
            reply: dict[str, Any] = {
                "event_id": self._next_id(), "type": "reply", "ts": self._ts(due),
                "account": self.accounts[ai], "platform": self.platforms[pi],
                "in_reply_to": in_reply_to, "resolved": resolved,
            }
            if post_id is not None:  # answers to mentions are not on one of our posts
                reply["post_id"] = post_id
            return reply
        # A tick expands into one scheduled record per account and platform (or campaign), all at
        # the tick's time; the next tick is never scheduled before the current call's start, so
        # a jump forward in start_ms does not replay every missed tick.
        if kind == _FOLLOWERS_TICK:
            for ai in range(len(self.accounts)):
                for pi in range(len(self.platforms)):
                    self._push(due, _FOLLOWERS, (ai, pi))
            interval = self.config.followers_interval_s * 1000.0
            self._push(max(due + interval, self._call_start), _FOLLOWERS_TICK, ())
            return None
        if kind == _SPEND_TICK:
            self._schedule_spend(due)
            interval = self.config.spend_interval_s * 1000.0
            self._push(max(due + interval, self._call_start), _SPEND_TICK, ())
            return None
        if kind == _FOLLOWERS:
            ai, pi = payload
            return {
                "event_id": self._next_id(), "type": "followers", "ts": self._ts(due),
                "account": self.accounts[ai], "platform": self.platforms[pi],
                "count": self._followers[ai][pi],
            }
        ai, camp, amount = payload
        return {
            "event_id": self._next_id(), "type": "spend", "ts": self._ts(due),
            "account": self.accounts[ai], "platform": camp.platform, "campaign": camp.slug,
            "amount": amount, "currency": self.config.currency,
        }

    def _schedule_spend(self, due: float) -> None:
        """Spend for the interval ending at ``due``, priced for a CPM near ``config.cpm``."""
        cfg = self.config
        impressions = self._rate * self._shape(due) * self._impression_share * cfg.spend_interval_s
        for ai, camps in enumerate(self._campaigns):
            account_spend = impressions * self._account_share[ai] * cfg.cpm / 1000.0
            for camp in camps:
                amount = round(account_spend * camp.budget_share * self._rng.uniform(0.85, 1.15), 2)
                self._push(due, _SPEND, (ai, camp, amount))

    # --- per-type records -----------------------------------------------------------------------
    # Each builds its dict in one literal: inserting keys one by one costs measurably more.

    def _user(self) -> str:
        # Squaring skews activity towards low ids: a few users are far more active than most.
        r = self._random()
        return self._users[int(r * r * len(self._users))]

    def _post(self, ai: int) -> str:
        # Recent posts (low index) get most of the interactions.
        r = self._random()
        posts = self._posts[ai]
        return posts[int(r * r * r * len(posts))]

    def _maybe_campaign(self, ai: int, p: float) -> str | None:
        camps = self._campaigns[ai]
        r = self._random()
        if not camps or r >= p:
            return None
        return camps[int(r / p * len(camps))].slug

    def _sentiment(self, mean: float, spread: float) -> float:
        return round(max(-1.0, min(1.0, self._rng.gauss(mean, spread))), 2)

    def _author_followers(self) -> int:
        # Pareto: most sharers have a few hundred followers, a few have millions.
        return min(50_000_000, int(40 * self._rng.paretovariate(1.1)))

    def _impression(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        r = self._random()
        paid_fraction = self.config.paid_fraction
        camps = self._campaigns[ai]
        if r < paid_fraction and camps:
            camp = camps[int(r / paid_fraction * len(camps))]
            return {
                "event_id": eid, "type": "impression", "ts": ts, "account": self.accounts[ai],
                "platform": camp.platform, "campaign": camp.slug,
                "post_id": camp.ads[int(self._random() * 3)], "user_id": self._user(),
                "paid": True,
            }
        return {
            "event_id": eid, "type": "impression", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "post_id": self._post(ai), "user_id": self._user(),
            "paid": False,
        }

    def _like(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        return {
            "event_id": eid, "type": "like", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "post_id": self._post(ai), "user_id": self._user(),
        }

    def _save(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        return {
            "event_id": eid, "type": "save", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "post_id": self._post(ai), "user_id": self._user(),
        }

    def _share(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        rec = {
            "event_id": eid, "type": "share", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "post_id": self._post(ai), "user_id": self._user(),
        }
        if self._random() < 0.9:
            rec["author_followers"] = self._author_followers()
        return rec

    def _comment(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        sentiment = self._sentiment(0.2, 0.45)
        # Complaints ask for an answer more often than praise: about 20 % overall.
        needs = self._random() < (0.45 if sentiment < -0.25 else 0.14)
        post_id = self._post(ai)
        rec: dict[str, Any] = {
            "event_id": eid, "type": "comment", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "post_id": post_id, "user_id": self._user(),
            "needs_response": needs,
        }
        if self._random() < 0.85:
            rec["sentiment"] = sentiment
        if needs:
            self._schedule_reply(t, ai, pi, post_id, eid)
        return rec

    def _mention(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        sentiment = self._sentiment(0.05, 0.5)
        needs = self._random() < (0.5 if sentiment < -0.25 else 0.18)
        rec: dict[str, Any] = {
            "event_id": eid, "type": "mention", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(), "needs_response": needs,
        }
        if self._random() < 0.85:
            rec["sentiment"] = sentiment
        if self._random() < 0.95:
            rec["author_followers"] = self._author_followers()
        if needs:
            self._schedule_reply(t, ai, pi, None, eid)
        return rec

    def _schedule_reply(self, t: float, ai: int, pi: int, post_id: str | None, eid: str) -> None:
        rng = self._rng
        if self._slow_replies and ai == self._target_ai and t >= self._scenario_from:
            answered, median, sigma, resolved_p = 0.55, self.config.slow_reply_median_s, 0.7, 0.5
        else:
            answered, median, sigma, resolved_p = 0.92, self._reply_median[ai], 1.0, 0.7
        if self._random() >= answered or self._pending_replies >= self.config.max_pending_replies:
            return
        # Lognormal: most answers come within minutes, a long tail takes hours. Clamped to a
        # human minimum of 20 s (so the reply's ts is always later) and a maximum of 3 days.
        delay_s = min(3 * 86_400.0, max(20.0, rng.lognormvariate(math.log(median), sigma)))
        self._pending_replies += 1
        self._push(t + delay_s * 1000.0, _REPLY, (ai, pi, post_id, eid,
                                                  self._random() < resolved_p))

    def _click(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        post_id = self._post(ai)
        rec: dict[str, Any] = {
            "event_id": eid, "type": "click", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "post_id": post_id, "user_id": self._user(),
        }
        campaign = self._maybe_campaign(ai, 0.3)
        if campaign is not None:
            rec["campaign"] = campaign
        if self._random() < 0.8:
            rec["url"] = f"https://{self.accounts[ai]}.example/p/{post_id}"
        return rec

    def _follow(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        self._followers[ai][pi] += 1
        return {
            "event_id": eid, "type": "follow", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(),
        }

    def _unfollow(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        self._followers[ai][pi] = max(0, self._followers[ai][pi] - 1)
        return {
            "event_id": eid, "type": "unfollow", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(),
        }

    def _visit(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        rng = self._rng
        bounced = self._random() < 0.45
        if bounced:
            pages, duration = 1, rng.expovariate(1 / 15)
        else:
            pages = 2 + int(rng.expovariate(1 / 2.5))
            duration = rng.lognormvariate(math.log(120), 0.8)
        rec: dict[str, Any] = {
            "event_id": eid, "type": "visit", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(), "pages": pages,
            "bounced": bounced,
        }
        if self._random() < 0.9:
            rec["duration_seconds"] = round(duration, 1)
        campaign = self._maybe_campaign(ai, 0.25)
        if campaign is not None:
            rec["campaign"] = campaign
        return rec

    def _lead(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "event_id": eid, "type": "lead", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(),
        }
        campaign = self._maybe_campaign(ai, 0.5)
        if campaign is not None:
            rec["campaign"] = campaign
        return rec

    def _conversion(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "event_id": eid, "type": "conversion", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(),
            "goal": self._goal_table[int(self._random() * _SMALL_TABLE_SIZE)],
        }
        campaign = self._maybe_campaign(ai, 0.4)
        if campaign is not None:
            rec["campaign"] = campaign
        return rec

    def _purchase(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        amount = round(max(1.0, self._rng.lognormvariate(math.log(45.0), 0.8)), 2)
        rec: dict[str, Any] = {
            "event_id": eid, "type": "purchase", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(), "amount": amount,
            "currency": self.config.currency,
        }
        campaign = self._maybe_campaign(ai, 0.4)
        if campaign is not None:
            rec["campaign"] = campaign
        return rec

    def _survey(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        r = self._random()
        if self._random() < 0.65:
            kind, score = "csat", self._csat_table[int(r * _SMALL_TABLE_SIZE)]
        else:
            kind, score = "nps", self._nps_table[int(r * _SMALL_TABLE_SIZE)]
        return {
            "event_id": eid, "type": "survey", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(), "survey": kind,
            "score": score,
        }

    def _review(self, eid: str, ts: int | str, t: float, ai: int, pi: int) -> dict[str, Any]:
        rating = self._rating_table[int(self._random() * _SMALL_TABLE_SIZE)]
        rec: dict[str, Any] = {
            "event_id": eid, "type": "review", "ts": ts, "account": self.accounts[ai],
            "platform": self.platforms[pi], "user_id": self._user(), "rating": rating,
        }
        if self._random() < 0.7:
            rec["sentiment"] = self._sentiment((rating - 3) / 2.0, 0.2)
        return rec

    # --- malformed records (bad-input) ----------------------------------------------------------

    _MALFORMED_KINDS: tuple[tuple[str, float], ...] = (
        ("not_json", 2.0), ("not_object", 1.0), ("missing_field", 2.0), ("unknown_type", 1.0),
        ("bad_slug", 1.5), ("far_future", 1.0), ("huge", 0.3), ("wrong_type", 2.0),
        ("nan", 1.0), ("not_utf8", 0.5), ("out_of_range", 1.0), ("bad_currency", 0.5),
        ("bad_event_id", 0.5),
    )

    def _malformed(self, t: float, ai: int) -> bytes:
        """A record as a buggy producer would send it: plausible, but breaking one rule."""
        rng = self._rng
        kind = rng.choices([k for k, _ in self._MALFORMED_KINDS],
                           [w for _, w in self._MALFORMED_KINDS])[0]
        base: dict[str, Any] = {
            "event_id": self._next_id(), "type": "like", "ts": int(t),
            "account": self.accounts[ai], "platform": self.platforms[0],
            "post_id": self._post(ai), "user_id": self._user(),
        }
        if kind == "not_json":
            return rng.choice([orjson.dumps(base)[:-9], b"like acme 1700000000000",
                               orjson.dumps(base).replace(b'":', b'"=', 1)])
        if kind == "not_object":
            return rng.choice([orjson.dumps([base]), b'"like"', b"42", b"null"])
        if kind == "missing_field":
            del base[rng.choice(["event_id", "type", "ts", "account", "platform"])]
        elif kind == "unknown_type":
            base["type"] = rng.choice(["poke", "retweet_v2", "LIKE", ""])
        elif kind == "bad_slug":
            key = rng.choice(["account", "platform"])
            base[key] = rng.choice(["Acme Corp!", "-acme", "x" * 70, "insta gram", "ACME"])
        elif kind == "far_future":
            base["ts"] = int(t) + _TEN_YEARS_MS
        elif kind == "huge":
            base["note"] = "x" * self.config.huge_record_bytes
        elif kind == "wrong_type":
            choice = rng.randrange(4)
            if choice == 0:
                base.update(type="followers", count="1200")
            elif choice == 1:
                base.update(type="impression", paid="yes")
            elif choice == 2:
                base["account"] = 42
            else:
                base["ts"] = [int(t)]
        elif kind == "nan":
            base.update(type="comment")
            return orjson.dumps(base)[:-1] + b',"sentiment":NaN}'
        elif kind == "not_utf8":
            return orjson.dumps(base).replace(b'"like"', b'"l\xffke"')
        elif kind == "out_of_range":
            choice = rng.randrange(4)
            if choice == 0:
                base.update(type="purchase", amount=-19.99, currency=self.config.currency)
            elif choice == 1:
                base.update(type="review", rating=7)
            elif choice == 2:
                base.update(type="visit", pages=0, bounced=True)
            else:
                base.update(type="survey", survey="nps", score=11)
        elif kind == "bad_currency":
            base.update(type="purchase", amount=12.5, currency=rng.choice(["euro", "E", "eur1"]))
        else:  # bad_event_id
            base["event_id"] = rng.choice(["", "e" * 200])
        return orjson.dumps(base)
