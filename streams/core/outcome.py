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
    rekeyed: bool = False  # read from the repartition topic, not the input topic


class Forward(NamedTuple):
    """A valid input record outside its account's home partition, to be written to the
    repartition topic's partition ``partition`` keyed by its account (SPEC §1)."""

    partition: int
    key: bytes
    value: bytes
    source_partition: int
    source_offset: int


@dataclass
class Outcome:
    """Counts of what ingest did, added to the health counters once per flush."""

    applied: dict[str, int] = field(default_factory=dict)  # by event type
    rejected: list[DeadLetter] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    rekeyed: int = 0  # forwards applied in process (``Engine.ingest_batch``)
    records: int = 0  # of the input topic
    rekeyed_records: int = 0  # of the repartition topic (forwarded input records)
    late: int = 0
    duplicates: int = 0
    replayed: int = 0
    overflow_accounts: int = 0
    overflow_campaigns: int = 0
    overflow_labels: dict[str, int] = field(default_factory=dict)  # platform, goal, currency

    def overflow(self, kind: str) -> None:
        self.overflow_labels[kind] = self.overflow_labels.get(kind, 0) + 1
