"""HTTP views of a worker: ``/metrics`` for Prometheus and ``/kpis`` as JSON for people and tools.

Both read the same ``streams.views.compute``; ``/kpis`` for an account owned by another worker
redirects there (the owner is whoever holds the account's input partition).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import app, health, registry, settings
from streams.engine import wall_ms
from streams.exporter import consumer_lag, refresh_health, render_steps
from streams.metrics import sample_metrics
from streams.steps import run_async
from streams.tables import board, engine, flusher
from streams.topics import interactions
from streams.views import SeriesMap, compute_async


class _ScrapeCache:
    """The last computed series. One compute at a time; a scrape that arrives while one runs
    waits for it and uses its result instead of computing the same thing again."""

    def __init__(self) -> None:
        self.series: SeriesMap | None = None
        self.lock = asyncio.Lock()
        self.generation = 0

    async def refresh(self) -> None:
        arrived_at = self.generation
        async with self.lock:
            if self.generation != arrived_at:
                return  # a compute finished after this scrape arrived: its values are fresh
            self.series = await compute_async(engine, settings, remote=board.entries())
            self.generation += 1


_cache = _ScrapeCache()
_BY_NAME = sample_metrics()


def _highwaters() -> dict[int, int | None]:
    topic = interactions.get_topic_name()
    out: dict[int, int | None] = {}
    consumer = app.consumer
    for tp in consumer.assignment():
        if tp.topic == topic:
            try:
                out[tp.partition] = consumer.highwater(tp)
            except Exception:  # not fetched yet
                out[tp.partition] = None
    return out


@app.page("/metrics")
async def metrics(view: web.View, request: web.Request) -> web.Response:
    refresh_health(health, engine, wall_ms(), _highwaters(), flusher.pending)
    await _cache.refresh()
    series = _cache.series or {}
    # Rendered in slices on the loop, not in a thread: a rendering thread holds the GIL for
    # whole switch intervals and the stream behind it waits as long. The text is KpiCollector's
    # output (tests/unit/streams/test_exporter.py holds them equal), formatted without
    # prometheus-client's per-sample label rendering.
    kpi_text = await run_async(render_steps(series))
    body = generate_latest(registry) + kpi_text
    # aiohttp refuses a charset inside content_type=, so the exact header goes in as a header.
    return view.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@app.page("/status")
async def status(view: web.View, request: web.Request) -> web.Response:
    """Cheap liveness and progress for probes and scripts: no KPI is computed."""
    return view.json({
        "partitions": sorted(engine.partitions),
        "accounts": len(engine.accounts()),
        "records_consumed": flusher.records_total + flusher.outcome.records,
        "consumer_lag_records": consumer_lag(engine, _highwaters()),
        "unflushed_records": flusher.pending,
        "newest_event_ms": engine.newest_event_ms(),
        "flushes": flusher.flushes_total,
    })


@app.page("/kpis")
async def kpis(view: web.View, request: web.Request) -> web.Response:
    query: Any = request.query
    account = query.get("account")
    window = query.get("window")
    if not account:
        return view.json({"error": "account is required", "accounts": engine.accounts()},
                         status=400)
    if account not in engine.accounts():
        owner = _owner_url(account)
        if owner is not None:
            target = f"{owner.rstrip('/')}/kpis?{request.query_string}"
            return view.bytes(b"", status=307, headers={"Location": target})
        return view.json({"error": f"unknown account {account!r}"}, status=404)
    series = await compute_async(engine, settings, only_account=account, remote=board.entries())
    return view.json(_as_json(account, window, series))


def _owner_url(account: str) -> str | None:
    """URL of the worker that owns ``account``'s partition, if it is another worker."""
    try:
        url = str(app.router.external_topic_key_store(interactions, account.encode()))
    except Exception:  # assignment not known yet, or a single worker
        return None
    if url.rstrip("/") == str(app.conf.canonical_url).rstrip("/"):
        return None
    return url


def _as_json(account: str, window: str | None, series: dict[str, Any]) -> dict[str, Any]:
    """{"windows": {w: {platform: {kpi: value}}}, "current": {...}, "campaigns": {...}}."""
    windows: dict[str, Any] = defaultdict(lambda: defaultdict(dict))
    current: dict[str, Any] = defaultdict(dict)
    campaigns: dict[str, Any] = defaultdict(lambda: defaultdict(dict))
    for name, rows in series.items():
        m = _BY_NAME[name]
        for labels, value in rows:
            extra = labels[len(m.labels) - len(m.extra):]
            key = m.key + "".join(f"{{{k}={v}}}" for k, v in zip(m.extra, extra, strict=True))
            if m.scope == "current":
                current[labels[1]][key] = value
            elif window is None or labels[2] == window:
                target = windows if m.scope == "window" else campaigns
                target[labels[2]][labels[1]][key] = value
    return {
        "account": account,
        "clock_ms": engine.clock(),
        "windows": windows,
        "current": current,
        "campaigns": campaigns,
    }
