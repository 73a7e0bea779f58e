"""streams.worker.httpd: what GET /kpis may cost, the redirect's query kept encoded, and which
scrapers take gzip."""

from __future__ import annotations

import asyncio

import pytest

from streams.worker.httpd import KpisCache, accepts_gzip


def test_a_loop_of_requests_costs_one_compute_per_account_and_period() -> None:
    calls: list[str] = []

    async def compute(account: str) -> tuple[int, str]:
        calls.append(account)
        await asyncio.sleep(0.05)
        return len(calls), f"series of {account}"

    async def scenario() -> list[tuple[int, str] | None]:
        cache: KpisCache[str] = KpisCache(compute, ttl_s=60, concurrent=2)
        return await asyncio.gather(*(cache.get("acme") for _ in range(8)))

    answers = asyncio.run(scenario())
    assert calls == ["acme"] and answers == [(1, "series of acme")] * 8


def test_too_many_waiting_are_refused_and_the_answer_expires() -> None:
    calls: list[str] = []

    async def compute(account: str) -> tuple[int, str]:
        calls.append(account)
        await asyncio.sleep(0.05)
        return len(calls), account

    async def scenario() -> tuple[list[tuple[int, str] | None], tuple[int, str] | None]:
        cache: KpisCache[str] = KpisCache(compute, ttl_s=0.2, concurrent=1)
        burst = await asyncio.gather(*(cache.get(f"a{i}") for i in range(10)))
        await asyncio.sleep(0.3)
        return burst, await cache.get("a0")

    burst, later = asyncio.run(scenario())
    assert sum(a is None for a in burst) == 6  # 1 computing + 3 waiting; the rest refused
    assert len(calls) == 5 and later is not None and later[0] == 5  # a0 computed again


def test_the_redirect_keeps_the_query_percent_encoded() -> None:
    from streams.worker.web import redirect_target

    target = redirect_target("http://w2:6066/", "account=acme%0d%0aX-Evil:%201&window=5m")
    assert target == "http://w2:6066/kpis?account=acme%0d%0aX-Evil:%201&window=5m"
    assert "\r" not in target and "\n" not in target


def test_an_answer_is_never_older_than_the_data() -> None:
    version = [0]

    async def compute(account: str) -> tuple[int, int]:
        return version[0], version[0]

    async def scenario() -> list[tuple[int, int] | None]:
        cache: KpisCache[int] = KpisCache(compute, ttl_s=60, concurrent=1,
                                          version=lambda: version[0])
        first = await cache.get("acme")
        again = await cache.get("acme")  # nothing applied since: the same answer
        version[0] = 1  # a batch applied
        return [first, again, await cache.get("acme")]

    assert asyncio.run(scenario()) == [(0, 0), (0, 0), (1, 1)]


@pytest.mark.parametrize("header,gzip", [
    ("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True),
    ("identity", False), ("", False), ("gzip;q=0", False), ("*", True), ("deflate", False),
    ("GZIP", True), ("gzip;q=oops", False),
])
def test_accepts_gzip(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip
