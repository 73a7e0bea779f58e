"""streams.core.keys: every key the changelog and the market topic use parses back to itself."""

from __future__ import annotations

import pytest

from streams.core.keys import (
    BUCKET,
    CORE,
    DEDUP_CHUNK,
    MARK,
    MarketKey,
    StateKey,
    bucket_key,
    chunk_key,
    core_key,
    mark_key,
    parse_state_key,
    partition_prefix,
)


def test_state_keys_round_trip() -> None:
    assert parse_state_key(bucket_key(3, ("acme", 2, 987654))) == StateKey(
        3, BUCKET, "acme", ("acme", 2, 987654))
    assert parse_state_key(core_key(0, "globex.eu")) == StateKey(0, CORE, "globex.eu")
    assert parse_state_key(chunk_key(11, 42)) == StateKey(11, DEDUP_CHUNK, seq=42)
    assert parse_state_key(mark_key(7)) == StateKey(7, MARK)


def test_keys_keep_their_wire_format() -> None:
    """Changelogs written before this module existed must still restore."""
    assert bucket_key(1, ("acme", 0, 5)) == b"1:b:acme:0:5"
    assert core_key(1, "acme") == b"1:c:acme"
    assert chunk_key(1, 9) == b"1:d:9"
    assert mark_key(1) == b"1:m"
    assert MarketKey(2, "coffee", "x", 1, 77).encode() == b"2|coffee|x|1|77"


def test_a_partition_prefix_selects_only_that_partition() -> None:
    assert bucket_key(1, ("a", 0, 0)).startswith(partition_prefix(1))
    assert not bucket_key(11, ("a", 0, 0)).startswith(partition_prefix(1))


@pytest.mark.parametrize("key", [b"1:x:acme", b"1:b:acme:0", b"m", b"1:m:extra", b"a:m"])
def test_other_state_keys_are_refused(key: bytes) -> None:
    with pytest.raises(ValueError):
        parse_state_key(key)


def test_market_keys_round_trip_and_refuse_other_shapes() -> None:
    k = MarketKey(5, "coffee", "instagram", 2, 123)
    assert MarketKey.parse(k.encode()) == k
    for bad in (b"5|coffee|x|2", b"p|coffee|x|2|1", b""):
        with pytest.raises(ValueError):
            MarketKey.parse(bad)
