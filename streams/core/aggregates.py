"""Aggregate records, in memory and as changelog bytes: buckets, account cores, partition marks.

The worker keeps three kinds of records per input partition, each one table key:

* ``Bucket`` (account, window resolution, bucket index): counters and sketches of the events whose
  own ``ts`` falls in the bucket. An event changes a bucket independently of any other state, so a
  bucket can be replayed on its own after a crash.
* ``AccountCore`` (account): state that ties events together or is not windowed: followers, lifetime
  revenue and customers, the index of comments and mentions that replies point to, and the care
  counters (answered, resolved, response times) that a reply adds to the buckets of *its* time.
* ``PartitionMark`` (partition): the partition's stream time and the last offset fully flushed.

Every record carries ``applied``: the offset of the last input record it includes, and
``applied_rekeyed`` the same for the partition's records of the repartition topic (its second
source: records whose key was not their account, ``streams.core.engine``). That is what makes a
re-delivered record (after a crash, before its offset was committed) a no-op for the records that
already hold it, and a normal update for those that do not.
"""

from __future__ import annotations

from typing import Any

import orjson
from xxhash import xxh3_64_intdigest, xxh32_intdigest

from streams.core.sketches import Hll, Quantiles, TopItems
from streams.core.totals import CareTotals

# Counter slots of a PlatformAgg. A flat list beats attributes for merge and encode.
(
    IMPRESSIONS, PAID_IMPRESSIONS, LIKES, COMMENTS, SHARES, SAVES, CLICKS, MENTIONS,
    POTENTIAL_REACH, VISITS, PAGE_VIEWS, BOUNCED, VISIT_DURATION_SUM, VISIT_DURATION_N,
    FOLLOWS, UNFOLLOWS, LEADS, ORDERS, CONVERSIONS, REPLIES, NEEDS_RESPONSE,
    SENTIMENT_SUM, SENTIMENT_N, SENTIMENT_POS, SENTIMENT_NEG, CSAT_N, CSAT_GOOD, NPS_N,
    NPS_PROMOTERS, NPS_DETRACTORS, REVIEWS, RATING_SUM,
) = range(32)
N_COUNTERS = 32

# The one empty dict of every aggregate without goals, money or campaigns (most buckets): never
# written; ``own`` gives an aggregate its own dict before the first value.
EMPTY: dict[str, Any] = {}


def own(d: dict[str, Any]) -> dict[str, Any]:
    """``d``, or a new dict in place of the shared ``EMPTY``."""
    return {} if d is EMPTY else d


def _merge_sum(dst: dict[str, float], src: dict[str, float]) -> dict[str, float]:
    """``dst`` plus ``src`` (``dst`` itself, unless it was ``EMPTY``)."""
    if not src:
        return dst
    dst = own(dst)
    for k, v in src.items():
        dst[k] = dst.get(k, 0) + v
    return dst


def _shared_if_empty(d: dict[str, Any]) -> dict[str, Any]:
    return d or EMPTY


class PlatformAgg:
    """Everything one account did on one platform in one bucket (or a merged window)."""

    __slots__ = (
        "counts", "goals", "orders_cur", "reach", "response", "revenue", "spend", "visitors",
    )

    def __init__(self) -> None:
        self.counts: list[float] = [0] * N_COUNTERS
        self.goals: dict[str, float] = EMPTY
        self.revenue: dict[str, float] = EMPTY
        self.orders_cur: dict[str, float] = EMPTY
        self.spend: dict[str, float] = EMPTY
        self.reach: Hll | None = None
        self.visitors: Hll | None = None
        self.response: Quantiles | None = None

    def merge(self, other: PlatformAgg) -> None:
        """Add ``other`` into self (sketches are merged by the caller: see ``merged``)."""
        c, o = self.counts, other.counts
        for i in range(N_COUNTERS):
            c[i] += o[i]
        self.goals = _merge_sum(self.goals, other.goals)
        self.revenue = _merge_sum(self.revenue, other.revenue)
        self.orders_cur = _merge_sum(self.orders_cur, other.orders_cur)
        self.spend = _merge_sum(self.spend, other.spend)
        if other.response is not None:
            if self.response is None:
                self.response = Quantiles()
            self.response.merge(other.response)

    def to_obj(self) -> list[Any]:
        return [
            self.counts, self.goals, self.revenue, self.orders_cur, self.spend,
            self.reach.to_b64() if self.reach else None,
            self.visitors.to_b64() if self.visitors else None,
            self.response.to_obj() if self.response and self.response.count else None,
        ]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> PlatformAgg:
        a = cls()
        a.counts = obj[0]
        a.goals, a.revenue = _shared_if_empty(obj[1]), _shared_if_empty(obj[2])
        a.orders_cur, a.spend = _shared_if_empty(obj[3]), _shared_if_empty(obj[4])
        if obj[5]:
            a.reach = Hll.from_b64(obj[5])
        if obj[6]:
            a.visitors = Hll.from_b64(obj[6])
        if obj[7]:
            a.response = Quantiles.from_obj(obj[7])
        return a


def merged(aggs: list[PlatformAgg]) -> PlatformAgg:
    """A fresh PlatformAgg that is the sum / union of ``aggs``."""
    out = PlatformAgg()
    reach: list[Hll] = []
    visitors: list[Hll] = []
    for a in aggs:
        out.merge(a)
        if a.reach is not None:
            reach.append(a.reach)
        if a.visitors is not None:
            visitors.append(a.visitors)
    if reach:
        out.reach = reach[0] if len(reach) == 1 else Hll.union(reach)
    if visitors:
        out.visitors = visitors[0] if len(visitors) == 1 else Hll.union(visitors)
    return out


# Campaign slots
C_IMPRESSIONS, C_CLICKS, C_CONVERSIONS = 0, 1, 2


class CampaignAgg:
    """What one campaign of an account did in one bucket (or a merged window)."""

    __slots__ = ("counts", "revenue", "spend")

    def __init__(self) -> None:
        self.counts: list[float] = [0, 0, 0]
        self.revenue: dict[str, float] = EMPTY
        self.spend: dict[str, float] = EMPTY

    def merge(self, other: CampaignAgg) -> None:
        for i in range(3):
            self.counts[i] += other.counts[i]
        self.revenue = _merge_sum(self.revenue, other.revenue)
        self.spend = _merge_sum(self.spend, other.spend)


# What the top posts are ranked by (SPEC §3, top posts), and the event types each counts.
POST_RANKINGS: dict[str, frozenset[str]] = {
    "engagements": frozenset({"like", "comment", "share", "save"}),
    "impressions": frozenset({"impression"}),
    "clicks": frozenset({"click"}),
}
RANKING_OF: dict[str, str] = {t: k for k, types in POST_RANKINGS.items() for t in types}


class Bucket:
    """One (account, resolution, bucket index) record."""

    __slots__ = ("applied", "applied_rekeyed", "campaigns", "platforms", "posts")

    def __init__(self) -> None:
        self.platforms: dict[str, PlatformAgg] = {}
        self.campaigns: dict[str, CampaignAgg] = EMPTY
        # ranking (``POST_RANKINGS``) -> heavy hitters of the post ids of the bucket's events
        self.posts: dict[str, TopItems] = EMPTY
        self.applied = -1
        self.applied_rekeyed = -1

    def add_post(self, ranking: str, post_id: str) -> None:
        sk = self.posts.get(ranking)
        if sk is None:
            if self.posts is EMPTY:
                self.posts = {}
            sk = self.posts[ranking] = TopItems()
        sk.add(post_id)

    def platform(self, name: str) -> PlatformAgg:
        agg = self.platforms.get(name)
        if agg is None:
            agg = self.platforms[name] = PlatformAgg()
        return agg

    def campaign(self, name: str) -> CampaignAgg:
        agg = self.campaigns.get(name)
        if agg is None:
            if self.campaigns is EMPTY:
                self.campaigns = {}
            agg = self.campaigns[name] = CampaignAgg()
        return agg

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "a": self.applied,
                "r": self.applied_rekeyed,
                "p": {k: v.to_obj() for k, v in self.platforms.items()},
                "c": {k: [v.counts, v.revenue, v.spend] for k, v in self.campaigns.items()},
                "t": {k: v.to_b64() for k, v in self.posts.items()},
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Bucket:
        obj = orjson.loads(data)
        b = cls()
        b.applied = obj["a"]
        b.applied_rekeyed = obj.get("r", -1)
        b.platforms = {k: PlatformAgg.from_obj(v) for k, v in obj["p"].items()}
        for k, v in obj["c"].items():
            ca = CampaignAgg()
            ca.counts, ca.revenue, ca.spend = v[0], _shared_if_empty(v[1]), _shared_if_empty(v[2])
            if b.campaigns is EMPTY:
                b.campaigns = {}
            b.campaigns[k] = ca
        posts = obj.get("t")  # .get: buckets written before top posts
        if posts:
            b.posts = {k: TopItems.from_b64(v) for k, v in posts.items()}
        return b


class Message:
    """A comment or mention that a reply may point to."""

    __slots__ = ("answered", "needs_response", "platform", "resolved", "ts")

    def __init__(
        self, ts: int, platform: str, needs_response: bool, answered: bool = False,
        resolved: bool = False,
    ) -> None:
        self.ts = ts
        self.platform = platform
        self.needs_response = needs_response
        self.answered = answered
        self.resolved = resolved


class Followers:
    """Last authoritative count plus the follows and unfollows that came after it (event time).

    Without a snapshot the count is unknown (``value`` is None): a net of follows is no count.
    Deltas older than the retention horizon can never be superseded by a snapshot (an event that
    old is late), so ``prune`` folds them into ``folded``."""

    __slots__ = ("deltas", "folded", "snap_count", "snap_ts")

    def __init__(self) -> None:
        self.snap_ts = -1
        self.snap_count = 0
        # event ts (ms) -> net follows at that instant, only for ts after the snapshot
        self.deltas: dict[int, int] = {}
        self.folded = 0  # net follows after the snapshot, older than the retention horizon

    def snapshot(self, ts: int, count: int) -> None:
        if ts >= self.snap_ts:
            self.snap_ts, self.snap_count = ts, count
            self.deltas = {t: d for t, d in self.deltas.items() if t > ts}
            self.folded = 0

    def change(self, ts: int, delta: int) -> None:
        if ts > self.snap_ts:
            self.deltas[ts] = self.deltas.get(ts, 0) + delta

    def prune(self, horizon: int) -> bool:
        """Fold the deltas older than ``horizon``; True when anything changed."""
        old = [t for t in self.deltas if t < horizon]
        for t in old:
            self.folded += self.deltas.pop(t)
        return bool(old)

    def value(self) -> int | None:
        if self.snap_ts < 0:
            return None
        return self.snap_count + self.folded + sum(self.deltas.values())


def _sketch_obj(q: Quantiles | None) -> list[Any] | None:
    return q.to_obj() if q is not None and q.count else None


def _sketch(obj: list[Any] | None) -> Quantiles | None:
    return Quantiles.from_obj(obj) if obj else None


class CareSlot:
    """Care of one platform in one bucket: messages answered and resolved (counted at the
    message's time) and response times (at the reply's time), in all hours and in the
    account's business hours (``business``: only for an account with a schedule)."""

    __slots__ = ("answered", "business", "resolved", "response")

    def __init__(
        self, answered: float = 0, resolved: float = 0, response: Quantiles | None = None,
        business: Quantiles | None = None,
    ) -> None:
        self.answered = answered
        self.resolved = resolved
        self.response = response
        self.business = business

    def to_obj(self) -> list[Any]:
        return [self.answered, self.resolved, _sketch_obj(self.response),
                _sketch_obj(self.business)]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> CareSlot:
        # three fields in slots written before business hours
        return cls(obj[0], obj[1], _sketch(obj[2]), _sketch(obj[3]) if len(obj) > 3 else None)


# The kinds of care staff a reply names (SPEC §1: ``agent``, ``team``); a staff slot's key is
# ``"{kind}:{slug}"`` (a slug has no colon).
STAFF_KINDS: tuple[str, ...] = ("agent", "team")


def staff_key(kind: str, slug: str) -> str:
    return f"{kind}:{slug}"


class StaffSlot:
    """What one agent or team did in one bucket, all at the reply's time: replies, those marked
    resolved, and the response times of the replies that met their message."""

    __slots__ = ("business", "replies", "resolved", "response")

    def __init__(
        self, replies: float = 0, resolved: float = 0, response: Quantiles | None = None,
        business: Quantiles | None = None,
    ) -> None:
        self.replies = replies
        self.resolved = resolved
        self.response = response
        self.business = business

    def to_obj(self) -> list[Any]:
        return [self.replies, self.resolved, _sketch_obj(self.response),
                _sketch_obj(self.business)]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> StaffSlot:
        return cls(obj[0], obj[1], _sketch(obj[2]), _sketch(obj[3]))


# Messages and orphan replies of one account are written in parts of about this many entries
# (a power of two of parts, by a hash of the message id), so that no state record grows with an
# account's traffic: 55,000 replies to unknown ids made one core record of 8.34 MiB, over the
# changelog's limit.
PART_ENTRIES = 2048


def message_part(message_id: str, parts: int) -> int:
    """The part of an account's messages (and orphan replies) ``message_id`` is written in."""
    return 0 if parts == 1 else xxh32_intdigest(message_id.encode()) & (parts - 1)


def parts_for(entries: int) -> int:
    n = 1
    while n * PART_ENTRIES < entries:
        n *= 2
    return n


# An account core's label decision (``AccountCore.label``).
UNDECIDED, ADMITTED, OVERFLOW = 0, 1, 2


class AccountCore:
    """The per-account record of state that is not a plain function of one bucket's events."""

    __slots__ = (
        "agents", "applied", "applied_rekeyed", "campaigns", "care", "care_totals", "clv",
        "currencies",
        "dirty_parts", "followers", "goals", "label", "messages", "n_parts", "orphans",
        "part_gens", "pending", "platforms", "seen_bucket", "staff", "teams",
    )

    def __init__(self) -> None:
        self.applied = -1
        self.applied_rekeyed = -1
        # The account's label decision in its partition (``streams.core.caps``): ADMITTED (its
        # own label), OVERFLOW (counted under "_other") or UNDECIDED (new, or quiet for the
        # retention horizon: nothing of it is in any window, only its lifetime state is kept).
        self.label = UNDECIDED
        # The newest bucket (of the largest window) with an event of the account: when the
        # decision lapses (a bucket, not a time, so that the core is not rewritten per event).
        self.seen_bucket = -1
        self.followers: dict[str, Followers] = {}
        # platform -> currency -> [revenue, customers HLL]
        self.clv: dict[str, dict[str, list[Any]]] = {}
        self.messages: dict[str, Message] = {}
        # in_reply_to -> [[reply ts, platform, resolved, agent, team], ...] for replies seen
        # before the message (three fields in state written before agents)
        self.orphans: dict[str, list[list[Any]]] = {}
        # Messages and orphans are written in ``n_parts`` records of their own (``message_part``),
        # each under a new generation when it changes; the core lists the generation of each,
        # so a flush cut short between a part and its core leaves the core's parts in force.
        self.n_parts = 1
        self.part_gens: dict[int, int] = {}  # part -> generation the changelog holds
        self.dirty_parts: set[int] = set()
        # (resolution index, bucket index) -> platform -> care of that bucket
        self.care: dict[tuple[int, int], dict[str, CareSlot]] = {}
        # (resolution index, bucket index) -> staff key (``staff_key``) -> what it did there
        self.staff: dict[tuple[int, int], dict[str, StaffSlot]] = {}
        # platform -> lifetime care counts and response-time histogram (``streams.core.totals``),
        # kept while the account holds its own label
        self.care_totals: dict[str, CareTotals] = {}
        # ids of messages needing a response that have none yet (derived from messages)
        self.pending: set[str] = set()
        # campaigns admitted under the per-account cap; only ever grows
        self.campaigns: set[str] = set()
        # platforms, goals and currencies admitted under their per-account caps; only ever grow
        self.platforms: set[str] = set()
        self.goals: set[str] = set()
        self.currencies: set[str] = set()
        # agents and teams admitted under their per-account caps; only ever grow
        self.agents: set[str] = set()
        self.teams: set[str] = set()

    def touch(self, message_id: str) -> None:
        """A message or its orphan replies changed: its part is written with the core."""
        self.dirty_parts.add(message_part(message_id, self.n_parts))

    def encode_parts(self) -> tuple[list[tuple[int, int, bytes]], list[tuple[int, int]]]:
        """The changed parts as (part, new generation, record), and the (part, generation)
        records they supersede; clears the dirty parts."""
        entries = len(self.messages) + len(self.orphans)
        n = self.n_parts
        if entries > n * PART_ENTRIES or (n > 1 and entries * 4 < n * PART_ENTRIES):
            n = parts_for(entries)
        dirty = set(range(n)) if n != self.n_parts else self.dirty_parts
        self.dirty_parts = set()
        if not dirty:
            return [], []
        old = self.part_gens
        if n != self.n_parts:
            superseded = sorted(old.items())
            self.n_parts, self.part_gens = n, {}
        else:
            superseded = [(part, old[part]) for part in sorted(dirty) if part in old]
        messages: dict[int, dict[str, list[Any]]] = {part: {} for part in dirty}
        orphans: dict[int, dict[str, list[list[Any]]]] = {part: {} for part in dirty}
        single = n == 1
        for i, m in self.messages.items():
            part = 0 if single else message_part(i, n)
            if part in messages:
                messages[part][i] = [m.ts, m.platform, m.needs_response, m.answered, m.resolved]
        for i, replies in self.orphans.items():
            part = 0 if single else message_part(i, n)
            if part in orphans:
                orphans[part][i] = replies
        top = max(old.values(), default=0)
        written = []
        for part in sorted(dirty):
            if not messages[part] and not orphans[part]:
                continue  # an empty part is no record (its old generation is tombstoned)
            top += 1
            self.part_gens[part] = top
            written.append((part, top, orjson.dumps({"m": messages[part], "o": orphans[part]})))
        for part in dirty:
            if not messages[part] and not orphans[part]:
                self.part_gens.pop(part, None)
        return written, superseded

    def load_part(self, data: bytes) -> None:
        obj = orjson.loads(data)
        for i, (ts, platform, needs, answered, resolved) in obj["m"].items():
            self.messages[i] = Message(ts, platform, needs, answered, resolved)
            if needs and not answered:
                self.pending.add(i)
        self.orphans.update(obj["o"])

    def care_slot(self, res: int, idx: int, platform: str) -> CareSlot:
        per = self.care.get((res, idx))
        if per is None:
            per = self.care[(res, idx)] = {}
        slot = per.get(platform)
        if slot is None:
            slot = per[platform] = CareSlot()
        return slot

    def care_total(self, platform: str) -> CareTotals:
        ct = self.care_totals.get(platform)
        if ct is None:
            ct = self.care_totals[platform] = CareTotals()
        return ct

    def staff_slot(self, res: int, idx: int, key: str) -> StaffSlot:
        per = self.staff.get((res, idx))
        if per is None:
            per = self.staff[(res, idx)] = {}
        slot = per.get(key)
        if slot is None:
            slot = per[key] = StaffSlot()
        return slot

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "a": self.applied,
                "r": self.applied_rekeyed,
                "l": self.label,
                "t": self.seen_bucket,
                "f": {p: [f.snap_ts, f.snap_count, list(f.deltas.items()), f.folded]
                      for p, f in self.followers.items()},
                "v": {p: {cur: [rv[0], rv[1].to_b64()] for cur, rv in per.items()}
                      for p, per in self.clv.items()},
                "q": [self.n_parts, sorted(self.part_gens.items())],
                "c": [[r, i, {p: s.to_obj() for p, s in per.items()}]
                      for (r, i), per in self.care.items()],
                "k": sorted(self.campaigns),
                "p": sorted(self.platforms),
                "g": sorted(self.goals),
                "u": sorted(self.currencies),
                "s": [[r, i, {k: s.to_obj() for k, s in per.items()}]
                      for (r, i), per in self.staff.items()],
                "ag": sorted(self.agents),
                "tm": sorted(self.teams),
                "ct": {p: ct.to_obj() for p, ct in self.care_totals.items()},
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> AccountCore:
        obj = orjson.loads(data)
        c = cls()
        c.applied = obj["a"]
        # .get: records written before the repartition topic and per-partition admission; such
        # a core was admitted (the old caps kept an account's slot for good)
        c.applied_rekeyed = obj.get("r", -1)
        c.label = obj.get("l", ADMITTED)
        c.seen_bucket = obj.get("t", -1)
        for p, (ts, count, deltas, *folded) in obj["f"].items():
            f = Followers()
            f.snap_ts, f.snap_count, f.deltas = ts, count, {int(t): d for t, d in deltas}
            f.folded = folded[0] if folded else 0
            c.followers[p] = f
        c.clv = {p: {cur: [rv[0], Hll.from_b64(rv[1])] for cur, rv in per.items()}
                 for p, per in obj["v"].items()}
        # messages and orphans: in their part records (``load_part``), or here in state
        # written before parts
        for i, (ts, platform, needs, answered, resolved) in obj.get("m", {}).items():
            c.messages[i] = Message(ts, platform, needs, answered, resolved)
            if needs and not answered:
                c.pending.add(i)
        c.orphans = obj.get("o", {})
        if "q" in obj:
            c.n_parts = obj["q"][0]
            c.part_gens = {part: gen for part, gen in obj["q"][1]}
        elif c.messages or c.orphans:
            c.dirty_parts = set(range(c.n_parts))  # moved into parts at the next flush
        c.campaigns = set(obj["k"])
        # .get: changelogs written before these caps existed have no such keys
        c.platforms = set(obj.get("p", ()))
        c.goals = set(obj.get("g", ()))
        c.currencies = set(obj.get("u", ()))
        for r, i, per in obj["c"]:
            c.care[(r, i)] = {p: CareSlot.from_obj(s) for p, s in per.items()}
        # .get: cores written before care staff
        for r, i, per in obj.get("s", ()):
            c.staff[(r, i)] = {k: StaffSlot.from_obj(s) for k, s in per.items()}
        c.agents = set(obj.get("ag", ()))
        c.teams = set(obj.get("tm", ()))
        # .get: cores written before lifetime totals
        c.care_totals = {p: CareTotals.from_obj(v) for p, v in obj.get("ct", {}).items()}
        return c


class PartitionMark:
    """Stream time, the last offset whose effects are fully in the changelog, and a fingerprint
    of the input record at that offset (``record_fingerprint``; -1: unknown): what the mark
    belongs to, since Kafka's metadata has no topic id for aiokafka to compare."""

    __slots__ = ("fingerprint", "flushed", "flushed_rekeyed", "stream_time")

    def __init__(
        self, stream_time: int = -1, flushed: int = -1, fingerprint: int = -1,
        flushed_rekeyed: int = -1,
    ) -> None:
        self.stream_time = stream_time
        self.flushed = flushed
        self.fingerprint = fingerprint
        # The same as ``flushed``, for the partition's records of the repartition topic.
        self.flushed_rekeyed = flushed_rekeyed

    def encode(self) -> bytes:
        return orjson.dumps(
            [self.stream_time, self.flushed, self.fingerprint, self.flushed_rekeyed])

    @classmethod
    def decode(cls, data: bytes) -> PartitionMark:
        # two fields in marks written before fingerprints, three before the repartition topic
        fields = orjson.loads(data)
        return cls(*fields)


def record_fingerprint(value: bytes | None) -> int:
    """Identifies an input record among the records a recreated topic could hold there."""
    return xxh3_64_intdigest(value or b"") >> 1  # non-negative, and never the -1 of "unknown"
