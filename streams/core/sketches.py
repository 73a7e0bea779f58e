"""Mergeable sketches kept per time bucket: HyperLogLog for distinct users, DDSketch for quantiles,
frequent items for the top posts.

All are mergeable, which is what lets a rolling window be the union of its buckets at read time.
The HLL is Apache DataSketches (C++; ~0.1 µs an update). The quantile sketch is DataDog's DDSketch
(its logarithmic mapping), whose guarantee is a *relative* error on the value (SPEC asks <= 2 % on
response times), with sparse bins of our own: a bucket's sketch holds a few values.
"""

from __future__ import annotations

import math
from base64 import b64decode, b64encode
from typing import Any, NamedTuple

import datasketches as ds
from ddsketch.mapping import LogarithmicMapping

HLL_LG_K = 14  # relative standard error 1.04/sqrt(2^14) = 0.8 %, so 2 % is 2.5 sigma
HLL_TYPE = ds.tgt_hll_type.HLL_4
DDSKETCH_ACCURACY = 0.01


class Hll:
    """Distinct count of strings; ``merge`` is a union."""

    __slots__ = ("_sk",)

    def __init__(self, sk: Any = None) -> None:
        self._sk = sk if sk is not None else ds.hll_sketch(HLL_LG_K, HLL_TYPE)

    def add(self, item: str) -> None:
        self._sk.update(item)

    def estimate(self) -> float:
        return float(self._sk.get_estimate())

    def to_b64(self) -> str:
        """For JSON records: base64 is a third larger than the bytes, hex would be double.

        The live sketch is then replaced by the one written, which is what a recovery reads
        back. A union of coupon-mode sketches (a bucket's few hundred users) estimates by HIP,
        whose sum depends on the order the coupons arrive in, and a compact serialization
        keeps them in another order than the live hash table: without this, the reach of a
        window differed after a restore by about 0.1 % (the updatable serialization keeps the
        order, at 2.3 times the bytes)."""
        data = self._sk.serialize_compact()
        self._sk = ds.hll_sketch.deserialize(data)
        return b64encode(data).decode("ascii")

    @classmethod
    def from_b64(cls, text: str) -> Hll:
        return cls(ds.hll_sketch.deserialize(b64decode(text)))

    @staticmethod
    def union_estimate(sketches: list[Hll]) -> float:
        """Estimate of the union without mutating any input."""
        if not sketches:
            return 0.0
        if len(sketches) == 1:
            return sketches[0].estimate()
        u = ds.hll_union(HLL_LG_K)
        for s in sketches:
            u.update(s._sk)
        return float(u.get_estimate())

    @staticmethod
    def union(sketches: list[Hll]) -> Hll:
        u = ds.hll_union(HLL_LG_K)
        for s in sketches:
            u.update(s._sk)
        return Hll(u.get_result(HLL_TYPE))


class Quantiles:
    """Relative-error quantile sketch of non-negative values (seconds): DDSketch's logarithmic
    mapping and rank rule (``ddsketch.DDSketch``), with its bins in a dict.

    DDSketch's own dense store costs about 2 KB even for one value, and a care slot per bucket
    holds one; most slots hold a few replies, so the sparse bins are a tenth of that. Quantiles
    are the same as DDSketch's for the same values (a unit test compares them)."""

    __slots__ = ("bins", "count", "hi", "lo", "total", "zero")

    def __init__(self) -> None:
        self.bins: dict[int, float] = {}
        self.zero = 0.0  # values too small to tell from 0
        self.count = 0.0
        self.total = 0.0  # the exact sum of the values added
        self.lo = math.inf
        self.hi = -math.inf

    def add(self, value: float) -> None:
        value = max(0.0, value)
        if value > _MIN_POSITIVE:
            key = _key(value)
            self.bins[key] = self.bins.get(key, 0.0) + 1.0
        else:
            self.zero += 1.0
        self.count += 1.0
        self.total += value
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value

    def quantile(self, q: float) -> float | None:
        if self.count == 0 or q < 0 or q > 1:
            return None
        rank = q * (self.count - 1)
        if rank < self.zero:
            return 0.0
        rank -= self.zero
        running = 0.0
        key = 0
        for key in sorted(self.bins):
            running += self.bins[key]
            if running > rank:
                break
        return float(_value(key))

    def merge(self, other: Quantiles) -> None:
        if not other.count:
            return
        bins = self.bins
        for key, n in other.bins.items():
            bins[key] = bins.get(key, 0.0) + n
        self.zero += other.zero
        self.count += other.count
        self.total += other.total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)

    def copy(self) -> Quantiles:
        out = Quantiles()
        out.merge(self)
        return out

    def to_obj(self) -> list[Any]:
        """[zero_count, count, sum, min, max, None, [[key, count], ...]] for orjson."""
        return [self.zero, self.count, self.total, self.lo, self.hi, None,
                [[k, n] for k, n in self.bins.items()]]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> Quantiles:
        """This format, or DDSketch's dense bins (``offset`` in place of None) of state written
        before it."""
        out = cls()
        out.zero, out.count, out.total, out.lo, out.hi, offset, bins = obj
        if offset is None:
            out.bins = {int(k): n for k, n in bins}
        else:
            out.bins = {offset + i: n for i, n in enumerate(bins) if n}
        return out


# Frequent items (Misra-Gries with DataSketches' offsets): a map of 2^7 slots keeps up to 96
# items and bounds every count's error by 3.5 / 128 of the sketch's weight (2.7 %), the sum of its
# buckets' bounds once merged.
TOP_LG_MAX_MAP = 7
_ABSENT = ""  # never an item (post ids have at least one character): its upper bound is the error


class TopItem(NamedTuple):
    """One ranked item: its estimated count and the bounds the true count lies between."""

    item: str
    estimate: int
    lower_bound: int
    upper_bound: int


class TopItems:
    """Heavy hitters of a stream of strings (DataSketches' frequent-items sketch).

    Between updates it is kept as its serialized bytes, a third to a fifth of the live sketch's
    memory: most buckets are past and never change again, and a bucket's sketch is serialized
    at each flush anyway (``to_b64``); the next update brings it back to life."""

    __slots__ = ("_blob", "_sk")

    def __init__(self, sk: Any = None, blob: bytes | None = None) -> None:
        self._sk = sk if sk is not None or blob is not None else _new_top()
        self._blob = blob

    def _live(self) -> Any:
        if self._sk is None:
            self._sk = ds.frequent_strings_sketch.deserialize(self._blob)
            self._blob = None
        return self._sk

    def add(self, item: str, weight: int = 1) -> None:
        (self._sk or self._live()).update(item, weight)

    @property
    def total(self) -> int:
        return int(self._live().total_weight)

    @property
    def error_bound(self) -> int:
        """No count is off by more than this (estimate - lower bound, upper bound - estimate)."""
        return int(self._live().get_upper_bound(_ABSENT))

    def top(self, n: int) -> list[TopItem]:
        """The ``n`` items of largest estimate (ties by item), with their bounds."""
        rows = self._live().get_frequent_items(
            ds.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
        ranked = sorted(rows, key=lambda r: (-r[1], r[0]))[:n]
        return [TopItem(item, int(est), int(lo), int(hi)) for item, est, lo, hi in ranked]

    def to_b64(self) -> str:
        """The encoded sketch; from here on it is kept serialized until the next ``add``."""
        if self._blob is None:
            self._blob = self._sk.serialize()
            self._sk = None
        return b64encode(self._blob).decode("ascii")

    @classmethod
    def from_b64(cls, text: str) -> TopItems:
        return cls(blob=b64decode(text))

    @staticmethod
    def union(sketches: list[TopItems]) -> TopItems:
        out = _new_top()
        for s in sketches:
            out.merge(s._sk if s._sk is not None else
                      ds.frequent_strings_sketch.deserialize(s._blob))
        return TopItems(out)


def _new_top() -> Any:
    return ds.frequent_strings_sketch(TOP_LG_MAX_MAP)


_MAPPING = LogarithmicMapping(DDSKETCH_ACCURACY)
_MIN_POSITIVE = _MAPPING.min_possible
_key = _MAPPING.key
_value = _MAPPING.value
