"""Which input partition an account's state lives in: Kafka's default partitioner, one home.

Producers that key each record by its account (SPEC §1) put it where Kafka's default partitioner
does, ``murmur2(key) & 0x7fffffff`` modulo the partition count (the Java client's and aiokafka's
``DefaultPartitioner``; librdkafka producers get it with ``partitioner=murmur2_random``). A record
read anywhere else is forwarded there through the repartition topic (``streams.core.engine``).
"""

from __future__ import annotations

from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as Kafka's ``org.apache.kafka.common.utils.Utils.murmur2`` computes it."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    end = length & ~3
    for i in range(0, end, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest >= 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=65536)
def home_partition(account: str, partitions: int) -> int:
    """The partition a record keyed by ``account`` goes to under Kafka's default partitioner."""
    return (murmur2(account.encode()) & 0x7FFFFFFF) % partitions
