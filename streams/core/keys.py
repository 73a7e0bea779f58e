"""Keys of the state changelog and of the market topic: the one place that writes and parses them.

State records (one table, keyed per input partition ``p``)::

    {p}:b:{account}:{resolution}:{bucket index}   a Bucket
    {p}:c:{account}                               an account core
    {p}:q:{account}:{part}:{generation}           a part of an account's messages (its core
                                                  lists the generation in force)
    {p}:d:{seq}                                   a dedup chunk
    {p}:m                                         the partition mark
    {p}:s                                         the state manifest (settings it was built with)

Market records: ``{p}|{market}|{platform}|{resolution}|{bucket index}`` -> mentions. Account and
market slugs cannot hold ``:`` or ``|`` (``schemas/event.schema.json``).
"""

from __future__ import annotations

from typing import NamedTuple

# (account, resolution index, bucket index): a plain tuple, built once per event and window.
BucketKey = tuple[str, int, int]

BUCKET, CORE, DEDUP_CHUNK, MARK, MANIFEST, MESSAGES, TOTALS = "b", "c", "d", "m", "s", "q", "t"


def bucket_key(p: int, k: BucketKey) -> bytes:
    return f"{p}:{BUCKET}:{k[0]}:{k[1]}:{k[2]}".encode()


def core_key(p: int, account: str) -> bytes:
    return f"{p}:{CORE}:{account}".encode()


def totals_key(p: int, label: str) -> bytes:
    return f"{p}:{TOTALS}:{label}".encode()


def message_part_key(p: int, account: str, part: int, generation: int) -> bytes:
    return f"{p}:{MESSAGES}:{account}:{part}:{generation}".encode()


def chunk_key(p: int, seq: int) -> bytes:
    return f"{p}:{DEDUP_CHUNK}:{seq}".encode()


def mark_key(p: int) -> bytes:
    return f"{p}:{MARK}".encode()


def manifest_key(p: int) -> bytes:
    return f"{p}:{MANIFEST}".encode()


def partition_prefix(p: int) -> bytes:
    """Every state key of partition ``p`` starts with this."""
    return f"{p}:".encode()


class StateKey(NamedTuple):
    """A parsed state key; the fields its ``kind`` does not use are empty."""

    partition: int
    kind: str
    account: str = ""
    bucket: BucketKey | None = None
    seq: int = -1  # a dedup chunk's sequence number, a message part's generation
    part: int = -1


def parse_state_key(key: bytes) -> StateKey:
    """The inverse of the ``*_key`` functions; raises ValueError on any other key."""
    parts = key.decode().split(":")
    p, kind = int(parts[0]), parts[1]
    if kind == BUCKET and len(parts) == 5:
        return StateKey(p, kind, parts[2], (parts[2], int(parts[3]), int(parts[4])))
    if kind in (CORE, TOTALS) and len(parts) == 3:
        return StateKey(p, kind, parts[2])
    if kind == MESSAGES and len(parts) == 5:
        return StateKey(p, kind, parts[2], seq=int(parts[4]), part=int(parts[3]))
    if kind == DEDUP_CHUNK and len(parts) == 3:
        return StateKey(p, kind, seq=int(parts[2]))
    if kind in (MARK, MANIFEST) and len(parts) == 2:
        return StateKey(p, kind)
    raise ValueError(f"not a state key: {key!r}")


class MarketKey(NamedTuple):
    """One published mention total: partition, market, platform, resolution, bucket index."""

    partition: int
    market: str
    platform: str
    resolution: int
    bucket: int  # bucket index

    def encode(self) -> bytes:
        return (f"{self.partition}|{self.market}|{self.platform}|{self.resolution}|"
                f"{self.bucket}").encode()

    @classmethod
    def parse(cls, key: bytes) -> MarketKey:
        """Raises ValueError on a key of any other shape."""
        p, market, platform, res, idx = key.decode().split("|")
        return cls(int(p), market, platform, int(res), int(idx))
