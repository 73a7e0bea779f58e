"""What the demo's view shows, read from the running product: one :class:`Snapshot` per refresh.

The pipeline's figures come from the worker's ``/status`` (records consumed, consumer lag, dead
letters by reason) and from the simulator's own count of acknowledged records; the headline KPIs
of each simulated account from ``/kpis`` (platform ``all``, the view's window and the window the
alerts watch); the alerts from Prometheus's ``/api/v1/alerts``. A source that does not answer yet
(the worker still joining its group) leaves its part empty rather than failing the view.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ALL_PLATFORMS = "all"
P90 = "response_time_seconds{quantile=0.9}"
# Lines of the worker's log the view repeats (faust's format: ``[time] [pid] [LEVEL] message``).
_WORTH_SHOWING = ("[WARNING]", "[ERROR]", "[CRITICAL]", "Traceback")


@dataclass(frozen=True)
class AccountRow:
    """Headline KPIs of one account (None: no value yet)."""

    account: str
    impressions: float | None = None
    engagement_rate: float | None = None
    alert_engagement_rate: float | None = None  # on the window the alerts watch
    click_through: float | None = None
    share_of_voice: float | None = None
    response_p90_s: float | None = None
    pending_replies: float | None = None


@dataclass(frozen=True)
class AlertRow:
    """One pending or firing alert of Prometheus."""

    name: str
    state: str  # "pending" or "firing"
    account: str | None
    since: float | None  # unix seconds (activeAt)
    summary: str


@dataclass(frozen=True)
class Snapshot:
    """Everything one refresh of the view shows."""

    at: float
    produced: int
    produced_per_s: float | None
    consumed: int | None
    consumed_per_s: float | None
    lag: int | None
    dead_letters: dict[str, int] = field(default_factory=dict)
    accounts: tuple[AccountRow, ...] = ()
    alerts: tuple[AlertRow, ...] | None = None  # None: no Prometheus in this demo
    problems: tuple[str, ...] = ()  # sources that did not answer, for the status line
    worker_warning: str | None = None  # the worker log's last WARNING or ERROR line


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def account_row(account: str, body: dict[str, Any] | None, window: str,
                alert_window: str | None) -> AccountRow:
    """The headline KPIs of one ``/kpis`` answer (None: the worker has not seen the account)."""
    if body is None:
        return AccountRow(account)
    kpis = body.get("windows", {}).get(window, {}).get(ALL_PLATFORMS, {})
    short = (body.get("windows", {}).get(alert_window, {}).get(ALL_PLATFORMS, {})
             if alert_window else {})
    current = body.get("current", {}).get(ALL_PLATFORMS, {})
    return AccountRow(
        account,
        impressions=_float(kpis.get("impressions")),
        engagement_rate=_float(kpis.get("engagement_rate_ratio")),
        alert_engagement_rate=_float(short.get("engagement_rate_ratio")),
        click_through=_float(kpis.get("click_through_ratio")),
        share_of_voice=_float(kpis.get("share_of_voice_ratio")),
        response_p90_s=_float(kpis.get(P90)),
        pending_replies=_float(current.get("pending_responses")),
    )


def alert_rows(alerts: Sequence[dict[str, Any]]) -> tuple[AlertRow, ...]:
    """``/api/v1/alerts`` -> rows, firing before pending, then by start."""
    from datetime import datetime

    rows = []
    for a in alerts:
        labels, notes = a.get("labels", {}), a.get("annotations", {})
        since = None
        with contextlib.suppress(KeyError, ValueError, TypeError):
            since = datetime.fromisoformat(str(a["activeAt"]).replace("Z", "+00:00")).timestamp()
        rows.append(AlertRow(str(labels.get("alertname", "?")), str(a.get("state", "?")),
                             labels.get("account"), since, str(notes.get("summary", ""))))
    rows.sort(key=lambda r: (r.state != "firing", r.since or 0.0, r.name, r.account or ""))
    return tuple(rows)


@dataclass
class Probe:
    """Polls the worker (and Prometheus) and turns totals into rates between two polls."""

    worker_url: str
    accounts: Sequence[str]
    window: str
    alert_window: str | None = None
    prometheus_url: str | None = None
    produced: int = 0  # updated by the simulator's progress callback
    worker_log: Path | None = None
    timeout_s: float = 3.0
    #: Rates are taken over this many seconds of polls (one poll is one flush's worth of noise).
    rate_span_s: float = 6.0
    _history: deque[tuple[float, int, int | None]] = field(default_factory=deque)
    _session: aiohttp.ClientSession | None = None
    _log_offset: int = 0
    _warning: str | None = None

    async def __aenter__(self) -> Probe:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, url: str) -> dict[str, Any] | None:
        assert self._session is not None, "use Probe as an async context manager"
        async with self._session.get(url) as resp:
            if resp.status != 200:
                return None
            body: dict[str, Any] = await resp.json()
            return body

    def _read_log(self) -> None:
        """The last WARNING/ERROR line of what the worker logged since the previous poll."""
        if self.worker_log is None:
            return
        try:
            with self.worker_log.open("rb") as f:
                f.seek(self._log_offset)
                chunk = f.read(1 << 20)
        except OSError:
            return
        self._log_offset += len(chunk)
        for raw in chunk.splitlines():
            line = raw.decode("utf-8", "replace").strip()
            if any(tag in line for tag in _WORTH_SHOWING):
                self._warning = line[:300]

    async def snapshot(self) -> Snapshot:
        now, produced = time.time(), self.produced
        self._read_log()
        calls: list[Any] = [self._get(f"{self.worker_url}/status")]
        calls += [self._get(f"{self.worker_url}/kpis?account={a}") for a in self.accounts]
        if self.prometheus_url is not None:
            calls.append(self._get(f"{self.prometheus_url}/api/v1/alerts"))
        results = await asyncio.gather(*calls, return_exceptions=True)
        problems = []
        status = results[0] if isinstance(results[0], dict) else None
        if status is None:
            problems.append("worker /status not answering yet")
        kpis = results[1:1 + len(self.accounts)]
        rows = tuple(
            account_row(a, k if isinstance(k, dict) else None, self.window, self.alert_window)
            for a, k in zip(self.accounts, kpis, strict=True))
        alerts: tuple[AlertRow, ...] | None = None
        if self.prometheus_url is not None:
            answer = results[-1]
            if isinstance(answer, dict):
                alerts = alert_rows(answer.get("data", {}).get("alerts", []))
            else:
                alerts = ()
                problems.append("Prometheus not answering")
        consumed = int(status["records_consumed"]) if status else None
        produced_rate = consumed_rate = None
        history = self._history
        while len(history) > 1 and now - history[1][0] >= self.rate_span_s:
            history.popleft()
        if history:
            then, produced_then, consumed_then = history[0]
            dt = max(now - then, 1e-6)
            produced_rate = (produced - produced_then) / dt
            if consumed is not None and consumed_then is not None:
                consumed_rate = max(0, consumed - consumed_then) / dt
        history.append((now, produced, consumed))
        lag = status.get("consumer_lag_records") if status else None
        return Snapshot(
            at=now, produced=produced, produced_per_s=produced_rate, consumed=consumed,
            consumed_per_s=consumed_rate, lag=int(lag) if isinstance(lag, int) else None,
            dead_letters=dict(status.get("records_rejected", {})) if status else {},
            accounts=rows, alerts=alerts, problems=tuple(problems), worker_warning=self._warning,
        )
