"""What one pass of ingest did: counts for the health counters and the records to dead-letter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from schemas.events import Rejected


class DeadLetter(NamedTuple):
    """An input record refused by the validator, to be copied to the dead-letter topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    rejected: Rejected


@dataclass
class Outcome:
    """Counts of what ingest did, added to the health counters once per flush."""

    applied: dict[str, int] = field(default_factory=dict)  # by event type
    rejected: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    late: int = 0
    duplicates: int = 0
    replayed: int = 0
    overflow_accounts: int = 0
    overflow_campaigns: int = 0
    overflow_labels: dict[str, int] = field(default_factory=dict)  # platform, goal, currency

    def overflow(self, kind: str) -> None:
        self.overflow_labels[kind] = self.overflow_labels.get(kind, 0) + 1
