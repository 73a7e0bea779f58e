"""Mergeable sketches kept per time bucket: HyperLogLog for distinct users, DDSketch for quantiles.

Both are mergeable, which is what lets a rolling window be the union of its buckets at read time.
The HLL is Apache DataSketches (C++; ~0.1 µs an update). The quantile sketch is DataDog's DDSketch
(its logarithmic mapping), whose guarantee is a *relative* error on the value (SPEC asks <= 2 % on
response times), with sparse bins of our own: a bucket's sketch holds a few values.
"""

from __future__ import annotations

import math
from base64 import b64decode, b64encode
from typing import Any

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
        """For JSON records: base64 is a third larger than the bytes, hex would be double."""
        return b64encode(self._sk.serialize_compact()).decode("ascii")

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


_MAPPING = LogarithmicMapping(DDSKETCH_ACCURACY)
_MIN_POSITIVE = _MAPPING.min_possible
_key = _MAPPING.key
_value = _MAPPING.value
