"""All state of one input partition: its aggregates, dedup index, mark and what changed since the
last snapshot."""

from __future__ import annotations

from streams.core.aggregates import AccountCore, Bucket, PartitionMark
from streams.core.dedup import DedupIndex
from streams.core.keys import BucketKey
from streams.core.manifest import StateManifest
from streams.core.totals import Totals

# (market, resolution index, bucket index): one market total this partition publishes.
MarketSlot = tuple[str, int, int]


def rekeyed_position(offset: int) -> int:
    """A repartition-topic offset as a dedup position: negative, never an input offset."""
    return -2 - offset


class PartitionState:
    """All state of one input partition."""

    __slots__ = (
        "admitted", "buckets", "cores", "dedup", "dirty_buckets", "dirty_cores",
        "dirty_deleted", "dirty_markets", "dirty_totals", "last_fingerprint", "last_offset",
        "manifest",
        "manifest_dirty", "mark", "market_totals", "next_lapse", "others", "rekeyed_last",
        "rekeyed_rewound_to", "rewound_to", "totals",
    )

    def __init__(self, dedup: DedupIndex | None = None) -> None:
        self.mark = PartitionMark()
        # The settings the state was built with; written with the partition's first snapshot.
        self.manifest: StateManifest | None = None
        self.manifest_dirty = False
        self.buckets: dict[BucketKey, Bucket] = {}
        self.cores: dict[str, AccountCore] = {}
        # (account, event_id) -> the first (applied) record's position: its input offset, or
        # ``rekeyed_position`` of its repartition-topic offset (``streams.core.dedup``)
        self.dedup = dedup if dedup is not None else DedupIndex()
        self.dirty_buckets: set[BucketKey] = set()
        # label (an account, or "_other@market") -> its lifetime totals (``streams.core.totals``)
        self.totals: dict[str, Totals] = {}
        self.dirty_totals: set[str] = set()
        self.dirty_cores: set[str] = set()
        self.dirty_deleted: list[bytes] = []  # state keys to tombstone
        # market totals this partition must republish
        self.dirty_markets: set[MarketSlot] = set()
        # Mentions per market slot and platform, kept as they are applied (summing the accounts
        # of a market at each flush cost more than the events did).
        self.market_totals: dict[MarketSlot, dict[str, float]] = {}
        self.last_offset = -1
        self.last_fingerprint = -1  # of the record at last_offset
        self.rewound_to: int | None = None
        # The same two, for the partition's records of the repartition topic.
        self.rekeyed_last = -1
        self.rekeyed_rewound_to: int | None = None
        # The accounts holding a label slot here (ADMITTED cores), and the earliest time one of
        # their decisions may lapse (a lower bound: ``LabelCaps.decide`` looks only past it).
        self.admitted: set[str] = set()
        self.next_lapse = -1
        # The internal accounts of "_other" with buckets here, one per market (``labels``).
        self.others: set[str] = set()

    def add_mentions(self, market: str, res: int, idx: int, platform: str, n: float) -> None:
        slot = (market, res, idx)
        totals = self.market_totals.get(slot)
        if totals is None:
            totals = self.market_totals[slot] = {}
        totals[platform] = totals.get(platform, 0) + n
        self.dirty_markets.add(slot)
