"""Live simulated traffic for the end-to-end tests: simulators producing at the wall clock on a
background thread, with a backfill so that the windows are full from the start."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator

from streams.settings import Settings
from streams.tools.produce import EventInput, ProduceSummary, produce_events
from streams.tools.simulate import Simulator


class Traffic:
    """Live simulated traffic on a background thread: event time = wall clock after a backfill.

    Like ``streams.tools.produce.simulate_live`` (same generator, same producer) for several
    simulators at once, starting ``backfill_s`` in the past so that the windows are full from the
    start."""

    def __init__(self, settings: Settings, sims: list[tuple[str, Simulator, float]],
                 backfill_s: float, tick_s: float = 0.2) -> None:
        self.settings = settings
        self.sims = sims
        self.start_ms = int((time.time() - backfill_s) * 1000)
        self.tick_s = tick_s
        self.produced = 0
        self.summary: ProduceSummary | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="e2e-traffic", daemon=True)
        self._started = threading.Event()
        self.stopped_at: float | None = None

    def start(self) -> Traffic:
        self._thread.start()
        assert self._started.wait(30), "traffic thread did not start"
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        self.summary = await produce_events(self.settings, self._records())

    async def _records(self) -> AsyncIterator[EventInput]:
        assert self._stop is not None
        cursor = self.start_ms
        while not self._stop.is_set():
            now = int(time.time() * 1000)
            if now > cursor:
                for _name, sim, rate in self.sims:
                    for rec in sim.events(cursor, duration_s=(now - cursor) / 1000, rate=rate):
                        self.produced += 1
                        yield rec
                cursor = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.tick_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"traffic failed: {self.error!r}") from self.error
        assert self.alive or self.stopped_at is not None, "traffic thread ended by itself"

    def stop(self, timeout: float = 60.0) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.time()
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "traffic thread did not stop"
        if self.error is not None:
            raise AssertionError(f"traffic failed: {self.error!r}") from self.error
