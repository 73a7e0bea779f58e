"""streams.core.partitioner: the home partition is where Kafka's default partitioner puts a record
keyed by the account (aiokafka's implementation is the reference; the core may not import it)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as kafka_murmur2

from streams.core.partitioner import home_partition, murmur2


def test_murmur2_equals_kafkas_for_every_tail_length() -> None:
    rng = random.Random(3)
    for n in range(300):
        data = bytes(rng.randrange(256) for _ in range(n % 41))
        assert murmur2(data) == kafka_murmur2(data), data


def test_home_partition_is_the_default_partitioners_choice() -> None:
    partitions = list(range(12))
    for account in ("acme", "globex", "a", "brand-0001", "x" * 64, "b.c_d-e"):
        for n in (1, 3, 4, 12):
            assert home_partition(account, n) == \
                DefaultPartitioner()(account.encode(), partitions[:n], partitions[:n])
