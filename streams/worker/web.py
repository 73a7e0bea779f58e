"""HTTP handlers of a worker: ``/metrics`` for Prometheus, ``/kpis`` as JSON for people and tools,
``/status`` and ``/ready`` for probes.

``/metrics`` and ``/kpis`` read the same ``streams.core.series.compute``; ``/kpis`` for an account
owned by another worker redirects there (the owner is whoever holds the account's input
partition).
"""

from __future__ import annotations

import asyncio
import gzip
from collections import defaultdict
from typing import Any, NamedTuple

from faust import web
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.core.catalogue import sample_metrics
from streams.core.engine import wall_ms
from streams.core.series import SeriesMap, compute_async, top_posts
from streams.core.steps import run_async
from streams.export.exposition import render_steps
from streams.export.health import consumer_lag, refresh_health
from streams.worker.app import app, health, registry, settings
from streams.worker.components import board, engine, flusher, watchdog
from streams.worker.httpd import GZIP_LEVEL, KpisCache, accepts_gzip
from streams.worker.intake import BatchConsumer
from streams.worker.topics import interactions, repartitioned
from streams.worker.watchdog import Verdict


class _ScrapeCache:
    """The last computed series and the clock they were computed at. One compute at a time; a
    scrape that arrives while one runs waits for it and uses its result (and its clock) instead
    of computing the same thing again."""

    def __init__(self) -> None:
        self.series: SeriesMap | None = None
        self.clock_ms = -1
        self.lock = asyncio.Lock()
        self.generation = 0

    async def refresh(self) -> None:
        arrived_at = self.generation
        async with self.lock:
            if self.generation != arrived_at:
                return  # a compute finished after this scrape arrived: its values are fresh
            clock = engine.clock()
            self.series = await compute_async(engine, settings, remote=board.entries(),
                                              now=clock)
            self.clock_ms = clock
            self.generation += 1


_cache = _ScrapeCache()
_BY_NAME = sample_metrics()


def _highwaters(topic: str = interactions.get_topic_name()) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    consumer = app.consumer
    for tp in consumer.assignment():
        if tp.topic == topic:
            try:
                out[tp.partition] = consumer.highwater(tp)
            except Exception:  # not fetched yet
                out[tp.partition] = None
    return out


def _committed_lag(highwaters: dict[int, int | None]) -> int | None:
    """Records of the owned input partitions above the offsets the broker confirmed as
    committed; None before the consumer knows its highwaters."""
    consumer = app.consumer
    if not isinstance(consumer, BatchConsumer):
        return None
    lag = 0
    topic = interactions.get_topic_name()
    for p, hw in highwaters.items():
        if hw is None:
            return None
        committed = consumer.confirmed_commits.get(TP(topic, p))
        lag += hw - (committed if committed is not None else 0)
    return lag


@app.page("/metrics")
async def metrics(view: web.View, request: web.Request) -> web.Response:
    refresh_health(health, engine, wall_ms(), _highwaters(), flusher.pending,
                   _highwaters(repartitioned.get_topic_name()))
    await _cache.refresh()
    series = _cache.series or {}
    if _cache.clock_ms >= 0:
        health.window_end.set(_cache.clock_ms / 1000.0)
    # Rendered in slices on the loop, not in a thread: a rendering thread holds the GIL for
    # whole switch intervals and the stream behind it waits as long. The text is KpiCollector's
    # output (tests/unit/streams/export/test_exporter.py holds them equal), formatted without
    # prometheus-client's per-sample label rendering.
    kpi_text = await run_async(render_steps(series))
    body = generate_latest(registry) + kpi_text
    # aiohttp refuses a charset inside content_type=, so the exact header goes in as a header.
    headers = {"Content-Type": CONTENT_TYPE_LATEST}
    if accepts_gzip(request.headers.get("Accept-Encoding", "")):
        # Prometheus asks for gzip; tens of MB of text shrink about tenfold. In a thread: zlib
        # lets go of the GIL while it compresses, so the stream goes on meanwhile.
        body = await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL)
        headers["Content-Encoding"] = "gzip"
    headers["Vary"] = "Accept-Encoding"
    return view.bytes(body, headers=headers)


@app.page("/status")
async def status(view: web.View, request: web.Request) -> web.Response:
    """Cheap liveness and progress for probes and scripts: no KPI is computed."""
    highwaters = _highwaters()
    return view.json({
        "partitions": sorted(engine.partitions),
        "accounts": len(engine.accounts()),
        "records_consumed": flusher.records_total + flusher.outcome.records,
        # Sent to the dead-letter topic since start, by reason (flushed intervals only).
        "records_rejected": dict(flusher.rejected_total),
        "consumer_lag_records": consumer_lag(
            engine, highwaters, _highwaters(repartitioned.get_topic_name())),
        # Applied but not yet acked (the flush backlog included), and what the broker confirmed
        # as committed: a worker whose writes fail shows it here, not only in its logs.
        "unflushed_records": flusher.pending,
        "flush_backlog": flusher.backlog,
        "committed_lag_records": _committed_lag(highwaters),
        "newest_event_ms": engine.newest_event_ms(),
        "flushes": flusher.flushes_total,
        # Where windows end now, and where those of the last /metrics compute ended.
        "clock_ms": engine.clock(),
        "window_end_ms": _cache.clock_ms,
        "stalled_seconds": round(watchdog.latest.stalled_seconds, 1),
    })


@app.page("/ready")
async def ready(view: web.View, request: web.Request) -> web.Response:
    """Readiness: 200 once the worker owns recovered partitions and progresses; 503 while it
    recovers or rebalances, and while the progress watchdog says it is stalled."""
    reading = watchdog.latest
    reasons = []
    if app.in_recovery or app.rebalancing:
        reasons.append("recovering")
    if reading.verdict is not Verdict.OK:
        reasons.append(f"stalled {reading.stalled_seconds:.0f} s ({reading.half} partitions "
                       f"{list(reading.stuck)})")
    body = {"ready": not reasons, "reasons": reasons}
    return view.json(body, status=503 if reasons else 200)


@app.page("/kpis")
async def kpis(view: web.View, request: web.Request) -> web.Response:
    query: Any = request.query
    account = query.get("account")
    window = query.get("window")
    if not account:
        # No account list: it would tell any client every brand this worker serves.
        return view.json({"error": "account is required"}, status=400)
    if account not in engine.accounts():
        owner = _owner_url(account)
        if owner is not None:
            target = redirect_target(owner, request.rel_url.raw_query_string)
            return view.bytes(b"", status=307, headers={"Location": target})
        return view.json({"error": "unknown account"}, status=404)
    answer = await _kpis_cache.get(account)
    if answer is None:
        return view.json({"error": "busy, retry shortly"}, status=503,
                         headers={"Retry-After": "1"})
    clock, kpis = answer
    body = _as_json(account, window, kpis.series, clock)
    body["top_posts"] = {w: v for w, v in kpis.top_posts.items() if window in (None, w)}
    return view.json(body)


def redirect_target(owner_url: str, raw_query: str) -> str:
    """The owner's /kpis with the query exactly as the client sent it (still percent-encoded:
    a decoded ``%0d%0a`` would put a line break in the Location header)."""
    return f"{owner_url.rstrip('/')}/kpis?{raw_query}"


class AccountKpis(NamedTuple):
    """One account's answer: its series and its top posts, at one clock."""

    series: SeriesMap
    top_posts: dict[str, dict[str, Any]]


async def _compute_account(account: str) -> tuple[int, AccountKpis]:
    clock = engine.clock()
    series = await compute_async(engine, settings, only_account=account, remote=board.entries(),
                                 now=clock)
    return clock, AccountKpis(series, top_posts(engine, account, now=clock))


_kpis_cache: KpisCache[AccountKpis] = KpisCache(
    _compute_account, settings.kpis_cache_seconds, settings.kpis_max_concurrent,
    version=lambda: engine.batches)


def _owner_url(account: str) -> str | None:
    """URL of the worker that owns ``account``'s partition, if it is another worker."""
    try:
        url = str(app.router.external_topic_key_store(interactions, account.encode()))
    except Exception:  # assignment not known yet, or a single worker
        return None
    if url.rstrip("/") == str(app.conf.canonical_url).rstrip("/"):
        return None
    return url


def _as_json(
    account: str, window: str | None, series: dict[str, Any], clock_ms: int
) -> dict[str, Any]:
    """{"windows": {w: {platform: {kpi: value}}}, "current": {...}, "campaigns": {w: {campaign:
    {kpi: value}}}, "agents": ..., "teams": ...} (the same shape as campaigns), "totals":
    {platform: {counter: value}} (lifetime, not windowed)."""
    windows: dict[str, Any] = defaultdict(lambda: defaultdict(dict))
    current: dict[str, Any] = defaultdict(dict)
    totals: dict[str, Any] = defaultdict(dict)
    named: dict[str, dict[str, Any]] = {
        scope: defaultdict(lambda: defaultdict(dict)) for scope in ("campaign", "agent", "team")}
    for name, rows in series.items():
        m = _BY_NAME[name]
        for labels, value in rows:
            extra = labels[len(m.labels) - len(m.extra):]
            key = m.key + "".join(f"{{{k}={v}}}" for k, v in zip(m.extra, extra, strict=True))
            if m.scope == "current":
                current[labels[1]][key] = value
            elif m.scope == "total":
                # "_other" counts per partition (``KpiMetric.labels``)
                key += f"{{partition={labels[2]}}}" if labels[2] else ""
                totals[labels[1]][key] = value
            elif window is None or labels[2] == window:
                target = windows if m.scope == "window" else named[m.scope]
                target[labels[2]][labels[1]][key] = value
    return {
        "account": account,
        "clock_ms": clock_ms,
        "windows": windows,
        "current": current,
        "totals": totals,
        "campaigns": named["campaign"],
        "agents": named["agent"],
        "teams": named["team"],
    }
