"""Rolling windows and the bucket rule: the one home of "30 buckets per window" (SPEC §2).

A window of length L is cut into ``BUCKETS_PER_WINDOW`` buckets of ``L // 30`` ms, aligned to the
epoch; the window ending at a clock reading holds that reading's bucket and the 29 before it, so
its edges are rounded to 1/30 of its length (what SPEC §2 allows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BUCKETS_PER_WINDOW = 30

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"5m"`` -> 300.0 seconds; raises ValueError on anything else."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"not a duration (like 30s, 5m, 1h, 1d): {text!r}")
    value = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if value <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Window:
    """One rolling window: its label as exported, its length and its bucket width (ms)."""

    label: str
    length_ms: int
    bucket_ms: int

    @classmethod
    def parse(cls, label: str) -> Window:
        length_ms = int(parse_duration(label) * 1000)
        bucket_ms = max(1, length_ms // BUCKETS_PER_WINDOW)
        return cls(label=label, length_ms=length_ms, bucket_ms=bucket_ms)

    def bucket_of(self, ts_ms: int) -> int:
        """Index of the bucket holding ``ts_ms``."""
        return ts_ms // self.bucket_ms

    def first_bucket(self, clock_ms: int) -> int:
        """Index of the oldest bucket of the window that ends at ``clock_ms``."""
        return clock_ms // self.bucket_ms - (BUCKETS_PER_WINDOW - 1)

    def bucket_range(self, clock_ms: int) -> range:
        """Indexes of the buckets of the window that ends at ``clock_ms``, oldest first."""
        last = clock_ms // self.bucket_ms
        return range(last - (BUCKETS_PER_WINDOW - 1), last + 1)


class WindowFloors:
    """Per window, ``first_bucket(clock)``, recomputed only when the clock crosses a bucket edge.

    The engine asks once per event; between edges (most events) the answer is one comparison.
    """

    __slots__ = ("_hi", "_lo", "_value", "windows")

    def __init__(self, windows: tuple[Window, ...]) -> None:
        self.windows = windows
        self._lo = 0
        self._hi = -1  # empty range: the first call computes
        self._value: tuple[int, ...] = ()

    def at(self, clock_ms: int) -> tuple[int, ...]:
        if self._lo <= clock_ms < self._hi:
            return self._value
        self._value = tuple(w.first_bucket(clock_ms) for w in self.windows)
        # Valid from the latest edge at or below the clock to the next edge of any window.
        self._lo = max((clock_ms // w.bucket_ms) * w.bucket_ms for w in self.windows)
        self._hi = min((clock_ms // w.bucket_ms + 1) * w.bucket_ms for w in self.windows)
        return self._value
