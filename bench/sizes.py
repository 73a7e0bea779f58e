"""How big each benchmark phase is: the full run and the seconds-long ``--tiny`` smoke run."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Sizes:
    """Every size knob of one benchmark run."""

    name: str
    partitions: int
    # Throughput topic: simulated traffic, ``events`` records spread over ``span_s`` of event time
    # that ends now.
    events: int
    span_s: float
    extra_accounts: int  # generated accounts on top of the simulator's 4 default accounts
    users: int
    platforms: tuple[str, ...]
    # Latency phase: probes per second and for how long (background traffic at half the
    # sustained rate of socialpulse, at most ``latency_max_rate``).
    latency_seconds: float
    probes_per_second: float
    latency_poll_s: float
    latency_max_rate: float
    latency_low_rate: float  # a second, low-rate latency run (at most a quarter of the rate)
    # Scrape phase: accounts of the background traffic (sized for about 10,000 series), how many
    # scrapes, and the event-loop ping period.
    scrape_extra_accounts: int
    scrapes: int
    scrape_gap_s: float
    ping_period_s: float
    # Memory phase: ``memory_events`` records over 24 h of event time.
    memory_events: int
    memory_span_s: float
    # Day-at-scale phase: ``scale_events`` records over 24 h of event time and ``scale_users``
    # distinct users, measured when the worker has committed each of ``scale_points``.
    scale_events: int
    scale_users: int
    scale_points: tuple[int, ...]
    scale_duplicate_fraction: float
    # Periodic records of the simulator (followers snapshots, ad spend): hourly, as ad and
    # social APIs are commonly polled; the simulator's own defaults (5 min, 1 min) would make
    # them a large share of a 1,000-account stream.
    periodic_interval_s: float
    # Seconds a pipeline may take before the bench gives up on it.
    pipeline_timeout_s: float
    profile_seconds: float


FULL = Sizes(
    name="full",
    partitions=4,
    events=750_000,
    span_s=2 * 3600.0,
    extra_accounts=996,
    users=1_000_000,
    platforms=("instagram", "facebook", "x"),
    latency_seconds=40.0,
    probes_per_second=25.0,
    latency_poll_s=0.05,
    latency_max_rate=50_000.0,
    latency_low_rate=500.0,
    scrape_extra_accounts=12,
    scrapes=10,
    scrape_gap_s=2.0,
    ping_period_s=0.01,
    memory_events=600_000,
    memory_span_s=24 * 3600.0,
    scale_events=8_000_000,
    scale_users=2_000_000,
    scale_points=(2_000_000, 4_000_000, 8_000_000),
    scale_duplicate_fraction=0.01,
    periodic_interval_s=3600.0,
    pipeline_timeout_s=900.0,
    profile_seconds=30.0,
)

TINY = replace(
    FULL,
    name="tiny",
    events=12_000,
    span_s=600.0,
    extra_accounts=46,
    users=20_000,
    latency_seconds=4.0,
    probes_per_second=10.0,
    latency_poll_s=0.1,
    latency_max_rate=1_000.0,
    latency_low_rate=200.0,
    scrape_extra_accounts=10,
    scrapes=3,
    scrape_gap_s=0.5,
    memory_events=12_000,
    scale_events=12_000,
    scale_users=20_000,
    scale_points=(3_000, 6_000, 12_000),
    pipeline_timeout_s=60.0,
    profile_seconds=5.0,
)
