"""Mergeable sketches kept per time bucket: HyperLogLog for distinct users, DDSketch for quantiles.

Both are mergeable, which is what lets a rolling window be the union of its buckets at read time.
The HLL is Apache DataSketches (C++; ~0.1 µs an update). The quantile sketch is DataDog's DDSketch,
whose guarantee is a *relative* error on the value (SPEC asks <= 2 % on response times); its own
serialization needs protobuf, so we serialize its dense bins ourselves (a few lines, below).
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from typing import Any

import datasketches as ds
from ddsketch import DDSketch

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
    """Relative-error quantile sketch of non-negative values (seconds)."""

    __slots__ = ("_sk",)

    def __init__(self) -> None:
        self._sk = DDSketch(DDSKETCH_ACCURACY)

    def add(self, value: float) -> None:
        self._sk.add(max(0.0, value))

    @property
    def count(self) -> float:
        return float(self._sk.count)

    @property
    def total(self) -> float:
        """The exact sum of the values added (DDSketch tracks it outside the bins)."""
        return float(self._sk.sum)

    def quantile(self, q: float) -> float | None:
        if self._sk.count == 0:
            return None
        v = self._sk.get_quantile_value(q)
        return None if v is None else float(v)

    def merge(self, other: Quantiles) -> None:
        if other._sk.count:
            self._sk.merge(other._sk)

    def copy(self) -> Quantiles:
        out = Quantiles()
        out.merge(self)
        return out

    def to_obj(self) -> list[Any]:
        """[zero_count, count, sum, min, max, offset, bins] for orjson."""
        sk = self._sk
        store = sk._store
        return [sk._zero_count, sk._count, sk._sum, sk._min, sk._max, store.offset,
                [b for b in store.bins]]

    @classmethod
    def from_obj(cls, obj: list[Any]) -> Quantiles:
        out = cls()
        zero, count, total, lo, hi, offset, bins = obj
        sk = out._sk
        for i, weight in enumerate(bins):
            if weight:
                sk._store.add(offset + i, weight)
        sk._zero_count = zero
        sk._count = count
        sk._sum = total
        sk._min = lo
        sk._max = hi
        return out
