"""Deterministic, realistic traffic generator for the socialpulse event contract (SPEC §1).

``Simulator.events()`` yields JSON-ready dicts (and, in the ``bad-input`` scenario, raw ``bytes``
records that break the contract) spread over *event time*: no wall clock is read here, so a seed
and a start time always give the same stream, which is what tests and backfills need.
``streams.tools.produce.simulate_live`` drives the same generator from the wall clock.

The world being simulated, a brand's week:

- a brand (``acme``) and its competitors in one market, plus optional generated accounts
  (``brand-0001`` ...), each with a size that scales all of its traffic;
- records arrive as a Poisson process whose intensity follows a daily curve (peak in the evening
  UTC, trough at night) and averages ``rate`` records per second of event time over each week
  (viral bursts included, see below);
- each platform has its own audience and habits (``PLATFORM_PROFILES``): an engagement rate
  (likes + comments + shares + saves per impression: 4.21 % on Instagram, the average the source
  articles quote, about 1.5 % on Facebook, 1 % on X, 2.5 % on LinkedIn, 5.5 % on TikTok), its own
  split of that engagement and a click-through rate of 0.5-1.3 %. Impressions are therefore about
  94 % of the stream; mentions, audience changes, website visits, leads, conversions, purchases,
  surveys and reviews follow at their own rates (``DEFAULT_MIX``), the funnel (visits to
  purchases) in proportion to each platform's clicks;
- paid impressions (``paid_fraction`` of an account's impressions, about 15 %) run on the
  platforms of the account's campaigns, so every platform keeps its engagement rate;
- periodic records: ``followers`` snapshots per account and platform, ``spend`` per campaign
  (priced so that the cost per mille of the account's *paid* impressions is about ``cpm``);
- a care desk per account: 4-8 pseudonymous agents (``agent-07``) in 1-3 teams (``care-emea``,
  ``social-desk`` ...), with a skewed share of the load and different speeds. Comments and
  mentions that need a response are answered by a ``reply`` carrying its ``agent`` and ``team``
  after a lognormal delay (median about 10 minutes) while the account's team is at work
  (``SimulationConfig.business_hours``, ``streams.core.schedule``); a message that arrives while
  the team is off waits for the next opening and is answered shortly after it, except for a few
  that the on-call agent answers after hours, late. Without a schedule every hour is a working
  hour. Replies wait in a heap until their time comes, so a reply always follows the message it
  answers in the stream and in ``ts``;
- viral posts: ``viral_posts_per_week`` times a week (on average) one of an account's posts goes
  viral for some hours: its traffic rises within an hour or two to 1.5-4 times the account's
  whole normal traffic and decays over hours, with more shares and fewer clicks than usual; its
  impressions are organic and reach users beyond the account's regulars. The schedule
  (``Simulator.viral_bursts``) depends on the seed and the week only.

Scenarios (``SimulationConfig.scenario``), active from ``scenario_after_s`` seconds of event time
after the first generated event, to show an alert firing after a normal start:

- ``normal``;
- ``engagement-drop``: the target account's likes, comments, shares and saves (those of its viral
  posts too) fall to 10 % while its impressions go on unchanged (its engagement rate drops by 90 %);
- ``slow-replies``: the target account answers after a median of about 3 hours (after its next
  opening when a message comes in after hours, no on-call), and 45 % of the messages needing a
  response are never answered (its care KPIs and SLA alerts degrade);
- ``bad-input``: about 5 % of the records are malformed ``bytes`` (not JSON, not an object, a
  missing field, an unknown type, a bad slug, a far-future ts, an oversized record, a wrong type,
  a NaN literal, invalid UTF-8, an impossible number, a bad currency, a bad event id).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal, NamedTuple, TypeVar

import orjson

from streams.core.schedule import NO_SCHEDULES, BusinessHours, BusinessSchedules

Scenario = Literal["normal", "engagement-drop", "slow-replies", "bad-input"]
SCENARIOS: tuple[Scenario, ...] = ("normal", "engagement-drop", "slow-replies", "bad-input")

DEFAULT_ACCOUNTS: tuple[str, ...] = ("acme", "globex", "initech", "umbrella")
DEFAULT_PLATFORMS: tuple[str, ...] = ("instagram", "facebook", "x", "linkedin", "tiktok")


@dataclass(frozen=True, slots=True)
class PlatformProfile:
    """How one platform's audience behaves; rates are per impression."""

    traffic: float  # relative share of the randomly arriving records
    audience: float  # follower base relative to instagram's
    engagement_rate: float  # (likes + comments + shares + saves) / impressions
    # How the engagement splits into likes, comments, shares, saves (relative weights).
    split: tuple[float, float, float, float]
    click_through_rate: float  # clicks / impressions
    virality: float  # relative chance that a viral post of an account is on this platform


# The Instagram engagement rate is the figure of seed article 001 ("brands see an engagement
# rate of 4.21 % on Instagram on average"); the other rates and the splits are plausible industry
# averages for brand accounts (reactions dominate, X reposts and LinkedIn comments weigh more,
# TikTok engages most and links least), not measurements.
PLATFORM_PROFILES: Mapping[str, PlatformProfile] = {
    "instagram": PlatformProfile(0.35, 1.0, 0.0421, (0.80, 0.06, 0.05, 0.09), 0.008, 1.5),
    "facebook": PlatformProfile(0.22, 0.9, 0.015, (0.72, 0.12, 0.14, 0.02), 0.013, 1.0),
    "x": PlatformProfile(0.15, 0.5, 0.010, (0.62, 0.13, 0.20, 0.05), 0.009, 1.2),
    "linkedin": PlatformProfile(0.10, 0.25, 0.025, (0.78, 0.10, 0.10, 0.02), 0.010, 0.6),
    "tiktok": PlatformProfile(0.18, 0.7, 0.055, (0.85, 0.05, 0.05, 0.05), 0.005, 2.5),
}
# Platforms outside the table (youtube, a custom one ...).
FALLBACK_PROFILE = PlatformProfile(0.15, 0.5, 0.02, (0.80, 0.08, 0.07, 0.05), 0.008, 1.0)

# Relative weights of the randomly arriving types other than engagements and clicks (whose rates
# per impression come from the platform's profile): per 100 impressions. Replies, followers
# snapshots and spend are not drawn: they are scheduled. The funnel (visit to purchase) scales
# with each platform's click-through rate: these are its averages over the default platforms.
DEFAULT_MIX: Mapping[str, float] = {
    "impression": 100.0,
    "mention": 0.8,
    "follow": 0.3,
    "unfollow": 0.12,
    "visit": 0.62,  # about 70 % of the clicks end in a measured website session
    "lead": 0.04,
    "conversion": 0.025,
    "purchase": 0.012,
    "survey": 0.03,
    "review": 0.02,
}
ENGAGEMENT_TYPES: frozenset[str] = frozenset({"like", "comment", "share", "save"})
# The types a mix may weigh: engagements and clicks in a mix replace every platform's rate of
# them with the mix's weight (relative to its impressions, the same on every platform).
_MIX_TYPES = frozenset(DEFAULT_MIX) | ENGAGEMENT_TYPES | {"click"}
# A mix for tests that need every type often in a few thousand records: the shares of the
# simulator before issue 14 (engagement a quarter of the impressions, replies 20 times as
# frequent as a real brand's). Not realistic; the platforms' funnel still follows their CTR.
DENSE_MIX: Mapping[str, float] = {
    "impression": 66.0, "like": 12.0, "comment": 3.0, "share": 2.0, "save": 1.5, "click": 1.2,
    "mention": 2.0, "follow": 1.0, "unfollow": 0.4, "visit": 1.1, "lead": 0.15,
    "conversion": 0.1, "purchase": 0.035, "survey": 0.08, "review": 0.05,
}
_ENGAGEMENT_ORDER = ("like", "comment", "share", "save")  # the order of PlatformProfile.split
_FUNNEL_TYPES = frozenset({"visit", "lead", "conversion", "purchase"})

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

_CAMPAIGN_NAMES = ("spring-sale", "brand-awareness", "retargeting", "product-launch",
                   "holiday-promo", "lead-gen", "app-installs", "always-on")
# An account's first team is named after the region of its business hours' time zone (a desk
# without a schedule is the social desk); further teams take the other names.
_REGION_TEAMS = {"Europe": "care-emea", "Africa": "care-emea", "America": "care-amer",
                 "Asia": "care-apac", "Australia": "care-apac", "Pacific": "care-apac"}
_TEAM_NAMES = ("social-desk", "community", "escalations", "care-vip")
_GOALS = (("signup", 0.55), ("download", 0.35), ("newsletter", 0.10))
_CSAT_SCORES = ((5, 0.40), (4, 0.30), (3, 0.15), (2, 0.08), (1, 0.07))
_NPS_SCORES = tuple(zip(range(11), (2, 1, 1, 2, 2, 4, 5, 10, 18, 25, 30), strict=True))
_RATINGS = ((5, 0.50), (4, 0.20), (3, 0.10), (2, 0.07), (1, 0.13))  # J-shaped, as real reviews
# Offsets used for the RFC 3339 form of ts: producers in other time zones are the usual case.
_OFFSETS = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)),
            timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))

# Lookup tables make a weighted draw one multiply and one index (random.choices costs ~1 µs).
# The type tables are per platform and large enough that the rarest type (purchases on the
# platform with the fewest clicks) still fills a few slots.
_TYPE_TABLE_SIZE = 1 << 17
_SMALL_TABLE_SIZE = 1 << 12
_AGENT_TABLE_SIZE = 1 << 8
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000
_MS_PER_WEEK = 7 * _MS_PER_DAY
# The arrival intensity is re-evaluated once per minute of event time: the daily curve and the
# viral bursts are smooth at that scale.
_SHAPE_STEP_MS = 60_000
_TEN_YEARS_MS = 10 * 365 * _MS_PER_DAY

# Paid impressions concentrate on the platforms that run campaigns, up to this share there.
_MAX_PAID_SHARE = 0.6
# Care desk: agents per account, teams per account, how unevenly the load spreads (Zipf
# exponent) and how much the agents' speeds differ (sigma of a lognormal factor).
_AGENTS = (4, 8)
_TEAMS = (1, 3)
_AGENT_LOAD_SKEW = 1.0
_AGENT_SPEED_SIGMA = 0.4
# Replies answered outside the care tool (the platform's own app) carry no agent.
_UNASSIGNED_SHARE = 0.02
# Of the messages that arrive while the team is off, this share is answered by the on-call
# agent after hours (median 2 h), the rest after the next opening.
_ON_CALL_SHARE = 0.12
_ON_CALL_MEDIAN_S = 2 * 3600.0
_ON_CALL_SIGMA = 0.6
_MIN_REPLY_S = 20.0  # a human minimum, which also keeps a reply's ts after its message's
_MAX_REPLY_S = 3 * 86_400.0

# Viral bursts: rise (linear) over 0.5-2 h, peak at 1.5-4 x the account's normal traffic, decay
# exponentially with a time constant of 1-4 h and end at 5 % of the peak. Viral traffic engages
# a quarter more than the platform's usual (three times the shares) and clicks far less: the
# audience is not the account's own. Those bounds keep an account's engagement rate within
# 1.3 x its normal and its conversion rate above 0.6 x (EngagementRateDrop and
# ConversionRateDrop compare with a baseline at half).
_VIRAL_RISE_H = (0.5, 2.0)
_VIRAL_PEAK = (1.5, 4.0)
_VIRAL_TAU_H = (1.0, 4.0)
_VIRAL_END_LEVEL = 0.05
_VIRAL_TAIL = math.log(1 / _VIRAL_END_LEVEL)  # time constants from the peak to the end
_VIRAL_MAX_MS = (_VIRAL_RISE_H[1] + _VIRAL_TAU_H[1] * _VIRAL_TAIL) * _MS_PER_HOUR
_VIRAL_ENGAGEMENT = 1.25
_VIRAL_SHARE_BOOST = 3.0
_VIRAL_CTR = 0.15
_VIRAL_TABLE_SIZE = 1 << 8

# Heap entry kinds: a reply, the periodic ticks, and the records a tick expands into.
_REPLY, _FOLLOWERS_TICK, _SPEND_TICK, _FOLLOWERS, _SPEND = range(5)

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_MIX",
    "DEFAULT_PLATFORMS",
    "DENSE_MIX",
    "ENGAGEMENT_TYPES",
    "FALLBACK_PROFILE",
    "PLATFORM_PROFILES",
    "SCENARIOS",
    "PlatformProfile",
    "Scenario",
    "SimulationConfig",
    "Simulator",
    "ViralBurst",
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


def profile_of(platform: str) -> PlatformProfile:
    """The platform's profile, or the fallback for platforms outside ``PLATFORM_PROFILES``."""
    return PLATFORM_PROFILES.get(platform, FALLBACK_PROFILE)


@dataclass
class SimulationConfig:
    """What to simulate. Every field has a realistic default; only ``seed`` usually changes."""

    seed: int = 42
    # The first account is the brand; the others are its competitors in the same market.
    accounts: tuple[str, ...] = DEFAULT_ACCOUNTS
    # Extra generated accounts brand-0001 ... (smaller, heavy-tailed sizes), e.g. for load tests.
    extra_accounts: int = 0
    market: str = "default"
    # account -> market for accounts outside ``market`` (``Settings.market_of``): it picks the
    # schedule of the account's market in ``business_hours``.
    account_markets: Mapping[str, str] = field(default_factory=dict)
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
    # Cost per 1000 paid impressions.
    cpm: float = 8.0
    reply_median_s: float = 600.0
    slow_reply_median_s: float = 3 * 3600.0
    # When each account's care team works (``Settings.business_hours``); none: all hours.
    business_hours: BusinessSchedules = NO_SCHEDULES
    # Viral bursts per account and week, on average (0: none).
    viral_posts_per_week: float = 2.5
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
        unknown = set(self.mix) - _MIX_TYPES
        if unknown:
            raise ValueError(f"mix has types that are not drawn at random (replies, followers "
                             f"and spend are scheduled): {sorted(unknown)}")
        if any(w < 0 for w in self.mix.values()) or not any(w > 0 for w in self.mix.values()):
            raise ValueError("mix weights must be >= 0 and not all 0")
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
        if not 0 <= self.viral_posts_per_week <= 100:
            raise ValueError(f"viral_posts_per_week must be within 0..100: "
                             f"{self.viral_posts_per_week}")

    def account_names(self) -> list[str]:
        """All simulated accounts: the configured ones, then brand-0001 ... brand-NNNN."""
        return [*self.accounts, *(f"brand-{i:04d}" for i in range(1, self.extra_accounts + 1))]

    @property
    def target(self) -> str:
        return self.target_account or self.accounts[0]

    def markets(self) -> dict[str, str]:
        """account -> market, in the form ``Settings.markets`` takes."""
        return {name: self.account_markets.get(name, self.market) for name in self.account_names()}


@dataclass(frozen=True, slots=True)
class _Campaign:
    slug: str
    platform: str
    ads: tuple[str, ...]
    # Share of the account's spend; differs between campaigns as real budgets do.
    budget_share: float


@dataclass(frozen=True, slots=True)
class _Agent:
    """One pseudonymous member of an account's care desk."""

    slug: str
    team: str
    speed: float  # multiplies the account's reply delay (below 1: faster)


@dataclass(frozen=True, slots=True)
class _Desk:
    """An account's care desk: its agents, a load-weighted draw table, its business hours."""

    agents: tuple[_Agent, ...]
    table: list[_Agent]
    hours: BusinessHours | None


class ViralBurst(NamedTuple):
    """One post going viral: its traffic rises to ``peak`` x the account's normal traffic at
    ``peak_ms``, then decays with time constant ``tau_ms`` until ``end_ms``."""

    start_ms: float
    peak_ms: float
    end_ms: float
    tau_ms: float
    peak: float
    account: str
    platform: str
    post_id: str
    ai: int
    pi: int

    def level(self, t: float) -> float:
        """Traffic of the burst at ``t`` relative to the account's normal traffic."""
        if t < self.start_ms or t >= self.end_ms:
            return 0.0
        if t < self.peak_ms:
            return self.peak * (t - self.start_ms) / (self.peak_ms - self.start_ms)
        return self.peak * math.exp(-(t - self.peak_ms) / self.tau_ms)


class _Bursts(NamedTuple):
    """The viral bursts starting in one week, sorted by start, and their starts."""

    starts: list[float]
    bursts: list[ViralBurst]


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
        self._profiles = [profile_of(p) for p in self.platforms]
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
            [(pi, prof.traffic) for pi, prof in enumerate(self._profiles)], _SMALL_TABLE_SIZE)

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
            [max(10, int(200_000 * size * prof.audience * rng.lognormvariate(0.0, 0.3)))
             for prof in self._profiles]
            for size in sizes
        ]
        # Competitors answer at their own pace around the configured median; the target keeps
        # exactly the configured median so that scenarios compare cleanly with normal.
        self._reply_median = [cfg.reply_median_s * (1.0 if ai == self._target_ai
                                                    else rng.uniform(0.6, 2.5))
                              for ai in range(len(self.accounts))]
        markets = cfg.markets()
        self._desks: list[_Desk] = []
        serial = 1  # agents are numbered across accounts: agent-01 ... agent-NN
        for a in self.accounts:
            desk = self._desk(rng, serial, cfg.business_hours.of(a, markets[a]))
            serial += len(desk.agents)
            self._desks.append(desk)

        handlers: dict[str, Callable[[str, int | str, float, int, int], dict[str, Any]]] = {
            "impression": self._impression, "like": self._like, "save": self._save,
            "comment": self._comment, "share": self._share, "click": self._click,
            "mention": self._mention, "follow": self._follow, "unfollow": self._unfollow,
            "visit": self._visit, "lead": self._lead, "conversion": self._conversion,
            "purchase": self._purchase, "survey": self._survey, "review": self._review,
        }
        traffic = [prof.traffic for prof in self._profiles]
        mean_ctr = (sum(p.click_through_rate * w for p, w in zip(self._profiles, traffic,
                                                                  strict=True)) / sum(traffic))
        weights = [self._type_weights(prof, mean_ctr) for prof in self._profiles]
        self._type_tables = [
            _table([((handlers[t], t in ENGAGEMENT_TYPES), w) for t, w in ws.items() if w > 0],
                   _TYPE_TABLE_SIZE)
            for ws in weights
        ]
        # Share of impressions among each platform's records (for spend and paid shares).
        imp_share = [ws.get("impression", 0.0) / sum(ws.values()) for ws in weights]
        imp_weight = [s * w for s, w in zip(imp_share, traffic, strict=True)]
        self._impression_share = sum(imp_weight) / sum(traffic)
        self._paid = [self._paid_plan(camps, imp_weight) for camps in self._campaigns]
        # Share of each account's impressions that are paid: prices its spend.
        self._paid_share = [sum(w * p for w, (p, _) in zip(imp_weight, plan, strict=True))
                            / sum(imp_weight) for plan in self._paid]
        self._viral_types = [
            _table([((t, t in ENGAGEMENT_TYPES), w) for t, w in self._viral_weights(prof).items()],
                   _SMALL_TABLE_SIZE)
            for prof in self._profiles
        ]
        self._viral_platforms = _table(
            [(pi, prof.traffic * prof.virality) for pi, prof in enumerate(self._profiles)],
            _SMALL_TABLE_SIZE)
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
        # The viral state of the current minute: the share of arrivals that belong to a viral
        # post, and a table of the active bursts weighted by their traffic.
        self._viral_p = 0.0
        self._viral_scale = 0.0
        self._account_scale = float(self._account_slots)
        self._viral_table: list[ViralBurst] = []
        # Per week since the epoch: the factor of the normal traffic, and the bursts.
        self._base_factors: dict[int, float] = {}
        self._burst_weeks: dict[int, _Bursts] = {}
        self._recent: deque[dict[str, Any]] = deque(maxlen=512)

    # --- world building -------------------------------------------------------------------------

    def _type_weights(self, prof: PlatformProfile, mean_ctr: float) -> dict[str, float]:
        """Weights of the randomly drawn types on a platform with profile ``prof``; the funnel
        scales with its CTR relative to ``mean_ctr``, the traffic-weighted mean."""
        mix = self.config.mix
        impressions = mix.get("impression", 0.0)
        out = {"impression": impressions}
        split_total = sum(prof.split)
        for kind, part in zip(_ENGAGEMENT_ORDER, prof.split, strict=True):
            out[kind] = impressions * prof.engagement_rate * part / split_total
        out["click"] = impressions * prof.click_through_rate
        for kind, weight in mix.items():
            if kind != "impression":  # the mix's own weights win (engagements, clicks too)
                out[kind] = weight * (prof.click_through_rate / mean_ctr
                                      if kind in _FUNNEL_TYPES else 1.0)
        return out

    @staticmethod
    def _viral_weights(prof: PlatformProfile) -> dict[str, float]:
        """Weights of the types of a viral post's traffic on a platform with profile ``prof``."""
        split = dict(zip(_ENGAGEMENT_ORDER, prof.split, strict=True))
        split["share"] *= _VIRAL_SHARE_BOOST
        split_total = sum(split.values())
        rate = prof.engagement_rate * _VIRAL_ENGAGEMENT
        out = {"impression": 1.0}
        out.update({kind: rate * part / split_total for kind, part in split.items()})
        out["click"] = prof.click_through_rate * _VIRAL_CTR
        return out

    def _paid_plan(self, camps: list[_Campaign], weight: list[float]
                   ) -> list[tuple[float, tuple[_Campaign, ...]]]:
        """Per platform: the share of the account's impressions there that are paid, and the
        campaigns they belong to (``weight``: each platform's share of impressions). Paid
        impressions stay on their campaign's platform, so the account's paid share is
        ``paid_fraction`` (where the cap allows) and every platform keeps its engagement rate."""
        on = [tuple(c for c in camps if c.platform == p) for p in self.platforms]
        covered = sum(w for w, c in zip(weight, on, strict=True) if c) / sum(weight)
        p = min(_MAX_PAID_SHARE, self.config.paid_fraction / covered) if covered else 0.0
        return [(p if c else 0.0, c) for c in on]

    @staticmethod
    def _desk(rng: random.Random, serial: int, hours: BusinessHours | None) -> _Desk:
        """A care desk whose agents are numbered from ``serial``, in 1-3 teams, with a Zipf
        share of the load and speeds whose load-weighted geometric mean is 1 (so the account's
        median reply time stays its configured median)."""
        n_agents = rng.randint(*_AGENTS)
        first = "social-desk" if hours is None else _REGION_TEAMS.get(
            hours.timezone.split("/")[0], "social-desk")
        others = [t for t in _TEAM_NAMES if t != first]
        teams = [first, *rng.sample(others, rng.randint(*_TEAMS) - 1)]
        loads = [1.0 / (k + 1) ** _AGENT_LOAD_SKEW for k in range(n_agents)]
        speeds = [rng.lognormvariate(0.0, _AGENT_SPEED_SIGMA) for _ in range(n_agents)]
        mean_log = sum(w * math.log(s) for w, s in zip(loads, speeds, strict=True)) / sum(loads)
        agents = [_Agent(f"agent-{serial + k:02d}", teams[k % len(teams)],
                         speeds[k] / math.exp(mean_log)) for k in range(n_agents)]
        table = _table(list(zip(agents, loads, strict=True)), _AGENT_TABLE_SIZE)
        return _Desk(tuple(agents), table, hours)

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
        """Yield events from ``start_ms`` on, ``rate`` per second of event time on average.

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

    def viral_bursts(self, start_ms: float, end_ms: float) -> list[ViralBurst]:
        """The viral bursts active at some time in [start_ms, end_ms), by start."""
        out: list[ViralBurst] = []
        for week in range(int((start_ms - _VIRAL_MAX_MS) // _MS_PER_WEEK),
                          int(end_ms // _MS_PER_WEEK) + 1):
            out += [b for b in self._bursts(week).bursts
                    if b.start_ms < end_ms and b.end_ms > start_ms]
        return out

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
        """Milliseconds to the next random arrival: exponential around the current mean."""
        minute = int(t // _SHAPE_STEP_MS)
        if minute != self._gap_minute:
            self._gap_minute = minute
            self._minute(t)
        # 1 - random() is in (0, 1], so the log is finite.
        return -math.log(1.0 - self._random()) * self._gap_mean_ms

    def _minute(self, t: float) -> None:
        """Re-evaluate the arrival intensity and the viral state for the minute of ``t``."""
        base = self._base_factor(int(t // _MS_PER_WEEK))
        level = 0.0
        active: list[tuple[ViralBurst, float]] = []
        for burst in self._active_bursts(t):
            weight = self._account_share[burst.ai] * burst.level(t)
            if weight > 0:
                active.append((burst, weight))
                level += weight
        self._viral_p = viral_p = level / (1.0 + level)
        # Scales of the shared draw; the 1e-12 keeps a rounded product below the table's length.
        self._viral_scale = _VIRAL_TABLE_SIZE * (1 - 1e-12) / viral_p if viral_p else 0.0
        self._account_scale = self._account_slots * (1 - 1e-12) / (1.0 - viral_p)
        self._viral_table = _table(active, _VIRAL_TABLE_SIZE) if active else []
        self._gap_mean_ms = 1000.0 / (self._rate * self._shape(t) * base * (1.0 + level))

    def _shape(self, t: float) -> float:
        """Traffic level at event time ``t`` relative to the daily mean (averages 1 over a day)."""
        cfg = self.config
        hour = (t % _MS_PER_DAY) / _MS_PER_HOUR
        return 1.0 + cfg.daily_amplitude * math.cos(2 * math.pi * (hour - cfg.peak_hour_utc) / 24)

    # --- viral bursts ---------------------------------------------------------------------------

    def _active_bursts(self, t: float) -> Iterator[ViralBurst]:
        """Bursts that started before ``t`` and may still run (this week's and last week's)."""
        w = int(t // _MS_PER_WEEK)
        for week in (self._bursts(w - 1), self._bursts(w)):
            i = bisect.bisect_right(week.starts, t)
            while i > 0 and week.starts[i - 1] > t - _VIRAL_MAX_MS:
                i -= 1
                yield week.bursts[i]

    def _base_factor(self, w: int) -> float:
        """The factor of the normal traffic in week ``w`` (since the epoch). The bursts' traffic
        comes on top of it; scaling the normal traffic down by their share keeps the week's
        mean at ``rate``. Their traffic inside the week (last week's spilling in included)
        follows the daily curve, whose integral over the week is the week's length."""
        cached = self._base_factors.get(w)
        if cached is not None:
            return cached
        lo, hi = w * _MS_PER_WEEK, (w + 1) * _MS_PER_WEEK
        extra = sum(self._account_share[b.ai] * self._burst_volume(b, lo, hi)
                    for b in (*self._bursts(w - 1).bursts, *self._bursts(w).bursts)
                    if b.end_ms > lo)
        factor = _MS_PER_WEEK / (_MS_PER_WEEK + extra)
        if len(self._base_factors) > 8:  # a long run walks forward through the weeks
            self._base_factors.clear()
        self._base_factors[w] = factor
        return factor

    def _burst_volume(self, burst: ViralBurst, lo: float, hi: float) -> float:
        """Integral of level x daily curve of ``burst`` over [lo, hi) (midpoints every 20
        minutes: within a fraction of a percent for time constants of an hour or more)."""
        a, z = max(burst.start_ms, lo), min(burst.end_ms, hi)
        if z <= a:
            return 0.0
        n = math.ceil((z - a) / 1_200_000)
        h = (z - a) / n
        shape, level = self._shape, burst.level
        return h * sum(level(t) * shape(t) for t in (a + (k + 0.5) * h for k in range(n)))

    def _bursts(self, w: int) -> _Bursts:
        """The bursts starting in week ``w``, by start: a function of the seed and the week only,
        so chunked calls, restarts and other simulators of the seed agree."""
        cached = self._burst_weeks.get(w)
        if cached is not None:
            return cached
        cfg = self.config
        rng = random.Random(f"viral-{cfg.seed}-{w}")
        bursts: list[ViralBurst] = []
        whole, part = divmod(cfg.viral_posts_per_week, 1.0)
        top = 1.0 + cfg.daily_amplitude
        for ai, account in enumerate(self.accounts):
            for _ in range(int(whole) + (rng.random() < part)):
                # Posts go viral when their audience is awake: start times follow the daily curve.
                start = w * _MS_PER_WEEK + rng.random() * _MS_PER_WEEK
                for _attempt in range(8):
                    if rng.random() * top < self._shape(start):
                        break
                    start = w * _MS_PER_WEEK + rng.random() * _MS_PER_WEEK
                peak_ms = start + rng.uniform(*_VIRAL_RISE_H) * _MS_PER_HOUR
                tau = rng.uniform(*_VIRAL_TAU_H) * _MS_PER_HOUR
                pi = self._viral_platforms[int(rng.random() * _SMALL_TABLE_SIZE)]
                posts = self._posts[ai]
                bursts.append(ViralBurst(
                    start, peak_ms, peak_ms + tau * _VIRAL_TAIL, tau, rng.uniform(*_VIRAL_PEAK),
                    account, self.platforms[pi], posts[int(rng.random() * len(posts))], ai, pi))
        bursts.sort(key=lambda b: b.start_ms)
        out = _Bursts([b.start_ms for b in bursts], bursts)
        if len(self._burst_weeks) > 8:
            self._burst_weeks.clear()
        self._burst_weeks[w] = out
        return out

    # --- records --------------------------------------------------------------------------------

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
        # One draw decides between a viral post and the normal traffic, and picks the burst or
        # the account: below viral_p it is a burst, above it (rescaled) an account.
        r = rnd()
        viral_p = self._viral_p
        burst: ViralBurst | None = None
        if r < viral_p:
            burst = self._viral_table[int(r * self._viral_scale)]
            ai, pi = burst.ai, burst.pi
            kind, engaging = self._viral_types[pi][int(rnd() * _SMALL_TABLE_SIZE)]
        else:
            ai = self._account_table[int((r - viral_p) * self._account_scale)]
            pi = self._platform_table[int(rnd() * _SMALL_TABLE_SIZE)]
            handler, engaging = self._type_tables[pi][int(rnd() * _TYPE_TABLE_SIZE)]
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
        if burst is None:
            rec = handler(self._next_id(), self._ts(t), t, ai, pi)
        else:
            rec = self._viral(self._next_id(), self._ts(t), t, burst, kind)
        if self.config.duplicate_fraction:
            self._recent.append(rec)
        return rec

    def _scheduled(self, item: tuple[float, int, int, tuple[Any, ...]]) -> dict[str, Any] | None:
        due, _, kind, payload = item
        if kind == _REPLY:
            self._pending_replies -= 1
            ai, pi, post_id, in_reply_to, resolved, agent = payload
            reply: dict[str, Any] = {
                "event_id": self._next_id(), "type": "reply", "ts": self._ts(due),
                "account": self.accounts[ai], "platform": self.platforms[pi],
                "in_reply_to": in_reply_to, "resolved": resolved,
            }
            if agent is not None:
                reply["agent"] = agent.slug
                reply["team"] = agent.team
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
        """Spend for the interval ending at ``due``, priced for a paid CPM near ``config.cpm``."""
        cfg = self.config
        base = self._base_factor(int(due // _MS_PER_WEEK))
        impressions = (self._rate * self._shape(due) * base * self._impression_share
                       * cfg.spend_interval_s)
        for ai, camps in enumerate(self._campaigns):
            account_spend = (impressions * self._account_share[ai] * self._paid_share[ai]
                             * cfg.cpm / 1000.0)
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
        paid_p, camps = self._paid[ai][pi]
        if r < paid_p:
            camp = camps[int(r / paid_p * len(camps))]
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
        rnd = self._random
        slow = self._slow_replies and ai == self._target_ai and t >= self._scenario_from
        if slow:
            answered, median, sigma, resolved_p = 0.55, self.config.slow_reply_median_s, 0.7, 0.5
        else:
            answered, median, sigma, resolved_p = 0.92, self._reply_median[ai], 1.0, 0.7
        if rnd() >= answered or self._pending_replies >= self.config.max_pending_replies:
            return
        desk = self._desks[ai]
        picked = desk.table[int(rnd() * _AGENT_TABLE_SIZE)]
        agent: _Agent | None = picked
        median *= picked.speed
        wait_ms = 0.0
        hours = desk.hours
        if hours is not None and not hours.is_open(int(t)):
            if not slow and rnd() < _ON_CALL_SHARE:
                # The on-call duty rotates through the desk day by day.
                agent = desk.agents[int(t // _MS_PER_DAY) % len(desk.agents)]
                median, sigma = _ON_CALL_MEDIAN_S, _ON_CALL_SIGMA
            else:
                wait_ms = hours.next_open(int(t) + 1) - t
        if rnd() < _UNASSIGNED_SHARE:
            agent = None
        # Lognormal: most answers come within minutes, a long tail takes hours. Clamped to a
        # human minimum (so the reply's ts is always later) and a maximum of 3 days.
        delay_s = min(_MAX_REPLY_S,
                      max(_MIN_REPLY_S, self._rng.lognormvariate(math.log(median), sigma)))
        self._pending_replies += 1
        self._push(t + wait_ms + delay_s * 1000.0, _REPLY,
                   (ai, pi, post_id, eid, rnd() < resolved_p, agent))

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

    def _viral(self, eid: str, ts: int | str, t: float, burst: ViralBurst, kind: str
               ) -> dict[str, Any]:
        """A record of a viral post's traffic: organic, from anyone (not only the regulars)."""
        ai, pi = burst.ai, burst.pi
        rec: dict[str, Any] = {
            "event_id": eid, "type": kind, "ts": ts, "account": burst.account,
            "platform": burst.platform, "post_id": burst.post_id,
            "user_id": self._users[int(self._random() * len(self._users))],
        }
        if kind == "impression":
            rec["paid"] = False
        elif kind == "share":
            if self._random() < 0.9:
                rec["author_followers"] = self._author_followers()
        elif kind == "comment":
            sentiment = self._sentiment(0.2, 0.45)
            needs = self._random() < (0.45 if sentiment < -0.25 else 0.14)
            rec["needs_response"] = needs
            if self._random() < 0.85:
                rec["sentiment"] = sentiment
            if needs:
                self._schedule_reply(t, ai, pi, burst.post_id, eid)
        elif kind == "click" and self._random() < 0.8:
            rec["url"] = f"https://{burst.account}.example/p/{burst.post_id}"
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
