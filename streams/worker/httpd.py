"""The worker's HTTP server: faust's aiohttp server with the limits aiohttp does not set.

aiohttp waits for a request's headers as long as the client keeps the connection open, so a
client sending a header line every few seconds (slowloris) holds a connection indefinitely, and
nothing caps how many it holds. ``GuardedWeb`` serves faust's views through a protocol wrapper
that closes a connection whose request headers are not complete within
``SOCIALPULSE_WEB_HEADER_TIMEOUT_SECONDS``, refuses connections beyond
``SOCIALPULSE_WEB_MAX_CONNECTIONS``, and closes idle keep-alive connections after
``SOCIALPULSE_WEB_IDLE_TIMEOUT_SECONDS`` (aiohttp's own ``keepalive_timeout``). ``KpisCache``
bounds what ``GET /kpis`` may cost: one compute per account and cache period, a few at a time.
``accepts_gzip`` reads a scraper's ``Accept-Encoding``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp.web import AppRunner, BaseSite, TCPSite
from faust.web.drivers.aiohttp import Web

log = logging.getLogger(__name__)

_END_OF_HEADERS = b"\r\n\r\n"
T = TypeVar("T")


@dataclass
class ConnectionLimits:
    header_timeout_s: float
    idle_timeout_s: float
    max_connections: int


class _Guard:
    """What the connections of one server share: the count and the limits."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0


class _GuardedProtocol(asyncio.Protocol):
    """Forwards to aiohttp's protocol, after the connection cap, with a deadline on each
    request's headers (from its first byte, or from the connection's start)."""

    def __init__(self, inner: asyncio.Protocol, guard: _Guard) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.BaseTransport | None = None
        self.counted = False
        self.deadline: asyncio.TimerHandle | None = None
        self.tail = b""  # the last bytes seen, to find the end of headers across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.guard.open >= self.guard.limits.max_connections:
            transport.close()
            return
        self.guard.open += 1
        self.counted = True
        self._arm()
        self.inner.connection_made(transport)

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(self.guard.limits.header_timeout_s, self._expire)

    def _expire(self) -> None:
        self.deadline = None
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.counted:
            return
        if self.deadline is None:
            self._arm()  # the next request of a keep-alive connection starts
        seen = self.tail + data
        if _END_OF_HEADERS in seen:
            if self.deadline is not None:
                self.deadline.cancel()
            self.deadline = None
            self.tail = b""
        else:
            self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.counted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.counted:
            self.counted = False
            self.guard.open -= 1
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _GuardedTCPSite(TCPSite):
    """A TCPSite whose protocol factory wraps aiohttp's."""

    def __init__(self, runner: AppRunner, *args: Any, guard: _Guard, **kwargs: Any) -> None:
        super().__init__(runner, *args, **kwargs)
        self.guard = guard

    async def start(self) -> None:
        runner: Any = self._runner
        server = runner.server
        factory: Callable[[], asyncio.Protocol] = server
        guard = self.guard
        runner._server = _Factory(factory, guard)  # what TCPSite.start hands create_server
        try:
            await super().start()
        finally:
            runner._server = server


class _Factory:
    """Callable like aiohttp's Server (a protocol factory), with every other attribute of it."""

    def __init__(self, server: Callable[[], asyncio.Protocol], guard: _Guard) -> None:
        self._wrapped = server
        self._guard = guard

    def __call__(self) -> asyncio.Protocol:
        return _GuardedProtocol(self._wrapped(), self._guard)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class GuardedWeb(Web):
    """faust's aiohttp web driver with ``ConnectionLimits``."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits: ConnectionLimits = app.web_limits
        self._runner = AppRunner(self.web_app, access_log=None,
                                 keepalive_timeout=self.limits.idle_timeout_s)
        self.guard = _Guard(self.limits)

    def _new_transport_tcp(self) -> BaseSite:
        return _GuardedTCPSite(self._runner, self.app.conf.web_bind, self.app.conf.web_port,
                               ssl_context=self.app.conf.web_ssl_context, guard=self.guard)


class KpisCache(Generic[T]):
    """``GET /kpis`` answers per account: reused while ``version()`` (what the worker applied)
    has not moved, for at most ``ttl_s``; requests for an account being computed share that
    compute; at most ``concurrent`` computes at a time and no more than four times that many
    waiting (``get`` returns None: too busy). A client asking in a loop costs one compute per
    account and change, never one per request, and an answer is never older than the data."""

    def __init__(
        self, compute: Callable[[str], Awaitable[tuple[int, T]]], ttl_s: float, concurrent: int,
        version: Callable[[], int] = lambda: 0,
    ) -> None:
        self.compute = compute
        self.version = version
        self.ttl_s = ttl_s
        self.slots = asyncio.Semaphore(concurrent)
        self.max_waiting = 4 * concurrent
        self.waiting = 0
        self.answers: dict[str, tuple[float, int, tuple[int, T]]] = {}
        self.inflight: dict[str, asyncio.Future[tuple[int, T]]] = {}

    async def get(self, account: str) -> tuple[int, T] | None:
        hit = self._fresh(account)
        if hit is not None:
            return hit
        pending = self.inflight.get(account)
        if pending is not None:  # the same account is being computed: share its answer
            return await asyncio.shield(pending)
        if self.waiting >= self.max_waiting:
            return None
        self.waiting += 1
        future: asyncio.Future[tuple[int, T]] = asyncio.get_running_loop().create_future()
        self.inflight[account] = future
        try:
            async with self.slots:
                version = self.version()
                answer = await self.compute(account)
            now = time.monotonic()
            self.answers = {a: v for a, v in self.answers.items() if now - v[0] < self.ttl_s}
            self.answers[account] = (now, version, answer)
            future.set_result(answer)
            return answer
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters get it, nobody else has to
            raise
        finally:
            self.waiting -= 1
            self.inflight.pop(account, None)

    def _fresh(self, account: str) -> tuple[int, T] | None:
        found = self.answers.get(account)
        if (found is None or time.monotonic() - found[0] >= self.ttl_s
                or found[1] != self.version()):
            return None
        return found[2]


# Level 1: nearly the ratio of the default 6 on exposition text, at several times its speed.
GZIP_LEVEL = 1


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (not refused with ``q=0``)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False
