"""Pipeline (1), the Python ceiling: an aiokafka consumer that only decodes each record (orjson).

``python -m bench.raw_consumer --bootstrap H:P --topic T --expect N --group G`` reads the topic
from the beginning with a fresh group, in batches (``getmany``, the fastest aiokafka path), until
it has read ``N`` records, then prints its ``BENCH-RESULT`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer

from bench.procs import emit_report, self_usage


async def consume(bootstrap: str, topic: str, expect: int, group: str) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    loads = orjson.loads
    n = 0
    t_first = cpu_first = 0.0
    decoded_bytes = 0
    try:
        while n < expect:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            for msgs in batches.values():
                if n == 0 and msgs:
                    t_first, cpu_first = time.time(), time.process_time()
                for m in msgs:
                    value = m.value or b""
                    loads(value)
                    decoded_bytes += len(value)
                n += len(msgs)
        t_last, cpu_last = time.time(), time.process_time()
    finally:
        await consumer.stop()
    _, maxrss = self_usage()
    emit_report(n, t_first, t_last, cpu_first, cpu_last,
                {"decoded_bytes": decoded_bytes, "maxrss_kib": maxrss})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.raw_consumer", description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--group", required=True)
    a = p.parse_args(argv)
    asyncio.run(consume(a.bootstrap, a.topic, a.expect, a.group))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
