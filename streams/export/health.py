"""The pipeline's own metrics (``socialpulse_`` prefix), declared once, and their scrape-time
refresh: gauges that are computed once per scrape rather than kept current per event.
"""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
)

from schemas.events import Reason
from streams.build import BuildInfo
from streams.core.engine import Engine
from streams.core.labels import OTHER_ACCOUNT, OVERFLOW_KINDS


class Health:
    """The pipeline's own metrics (``socialpulse_`` prefix), registered on ``registry``, next
    to the process and Python runtime collectors every Prometheus client exports (memory,
    CPU, file descriptors, garbage collection: what operators look at first)."""

    def __init__(self, registry: CollectorRegistry, build: BuildInfo) -> None:
        for runtime in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(runtime)
        self.events = Counter(
            "socialpulse_events", "Valid events applied to the KPIs, by type.", ["type"],
            registry=registry,
        )
        self.records = Counter(
            "socialpulse_records_consumed", "Input records read from Kafka.", registry=registry
        )
        self.rejected = Counter(
            "socialpulse_events_rejected", "Records sent to the dead-letter topic, by reason.",
            ["reason"], registry=registry,
        )
        self.duplicates = Counter(
            "socialpulse_events_duplicate", "Events whose event_id was already counted.",
            registry=registry,
        )
        self.late = Counter(
            "socialpulse_events_late", "Events older than the largest window plus grace.",
            registry=registry,
        )
        self.replayed = Counter(
            "socialpulse_records_replayed",
            "Records re-delivered after a restart whose effect was already in the tables.",
            registry=registry,
        )
        self.repartitioned = Counter(
            "socialpulse_records_repartitioned",
            "Valid input records read outside their account's home partition (a null key, or a "
            "key that is not the account), forwarded there through the repartition topic.",
            registry=registry,
        )
        self.overflow = Counter(
            "socialpulse_events_overflow",
            "Events counted under an _other label value because of a cap (account, campaign, "
            "platform, goal, currency).",
            ["kind"], registry=registry,
        )
        self.flushes = Counter(
            "socialpulse_flushes", "Durable flushes of aggregates to the table changelogs.",
            registry=registry,
        )
        self.flush_failures = Counter(
            "socialpulse_flush_failures",
            "Flushes that failed, by stage: encode (the snapshot could not be encoded; nothing "
            "was captured) or write (the broker refused or was away; the snapshot is kept and "
            "written again first).",
            ["stage"], registry=registry,
        )
        self.flush_seconds = Counter(
            "socialpulse_flush_duration_seconds", "Time spent in durable flushes.",
            registry=registry,
        )
        self.newest_event = Gauge(
            "socialpulse_newest_event_timestamp_seconds",
            "Event time of the newest event applied by this worker.", registry=registry,
        )
        self.lag_seconds = Gauge(
            "socialpulse_processing_lag_seconds",
            "Wall time now minus the newest applied event time.", registry=registry,
        )
        self.consumer_lag = Gauge(
            "socialpulse_consumer_lag_records",
            "Records in owned input partitions not yet processed.", registry=registry,
        )
        self.unflushed = Gauge(
            "socialpulse_unflushed_records",
            "Records applied in memory whose state is not yet in the changelog (not yet acked).",
            registry=registry,
        )
        self.partitions = Gauge(
            "socialpulse_assigned_partitions", "Input partitions owned by this worker.",
            registry=registry,
        )
        self.accounts = Gauge(
            "socialpulse_exported_accounts", "Accounts this worker exports.", registry=registry
        )
        self.stalled_seconds = Gauge(
            "socialpulse_stalled_seconds",
            "How long an owned input partition has had records to apply or offsets to commit "
            "without moving (0 while every partition progresses); see SOCIALPULSE_STALL_*.",
            registry=registry,
        )
        self.window_end = Gauge(
            "socialpulse_window_end_timestamp_seconds",
            "Where the KPI windows of the last /metrics compute end: the clock that compute "
            "used (wall time, or the newest event time with the event clock).",
            registry=registry,
        )
        # Every reason and kind exists from the start, at 0: "no rejections" is a value a
        # dashboard can show and a rate() can see, unlike a missing series.
        for reason in Reason:
            self.rejected.labels(reason.value)
        for kind in OVERFLOW_KINDS:
            self.overflow.labels(kind)
        for stage in ("encode", "write"):
            self.flush_failures.labels(stage)
        self.build = Info(
            "socialpulse_build",
            "The running build: version, source revision, faust and Python versions.",
            registry=registry)
        self.build.info(build.labels())


def consumer_lag(
    engine: Engine, highwaters: dict[int, int | None],
    rekeyed_highwaters: dict[int, int | None] | None = None,
) -> int:
    """Records in the owned partitions (of the input, and of the repartition topic) that the
    engine has not read yet."""
    lag = 0
    for p, hw in highwaters.items():
        ps = engine.partitions.get(p)
        if hw is not None and ps is not None:
            lag += max(0, hw - (ps.last_offset + 1))
    for p, hw in (rekeyed_highwaters or {}).items():
        ps = engine.partitions.get(p)
        if hw is not None and ps is not None:
            lag += max(0, hw - (ps.rekeyed_last + 1))
    return lag


def refresh_health(
    health: Health, engine: Engine, wall_ms: int, highwaters: dict[int, int | None],
    unflushed: int, rekeyed_highwaters: dict[int, int | None] | None = None,
) -> None:
    """Scrape-time gauges: computed once per scrape instead of once per event."""
    newest = engine.newest_event_ms()
    if newest >= 0:
        health.newest_event.set(newest / 1000.0)
        health.lag_seconds.set(max(0.0, (wall_ms - newest) / 1000.0))
    health.consumer_lag.set(consumer_lag(engine, highwaters, rekeyed_highwaters))
    health.unflushed.set(unflushed)
    health.partitions.set(len(engine.partitions))
    health.accounts.set(len([a for a in engine.accounts() if a != OTHER_ACCOUNT]))
