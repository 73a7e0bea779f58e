"""Prometheus exporter: a custom Collector that builds every KPI gauge from the engine per scrape.

Nothing KPI-related is a long-lived prometheus-client object: a series exists exactly while the
engine has it, so a lost partition's accounts disappear with it and a ratio with a zero
denominator is simply not emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.engine import Engine
from streams.metrics import ALL_KPIS, OTHER_ACCOUNT, SUMMARY_PARTS, Health, KpiMetric
from streams.settings import Settings
from streams.steps import run
from streams.views import RemoteMentions, SeriesMap, compute


class KpiCollector(Collector):
    """Yields ``social_*`` gauge families for the accounts the engine owns right now.

    ``series`` supplies the values: by default a fresh ``compute``; the worker passes the result
    its /metrics view computed just before (asynchronously, a slice at a time).
    """

    def __init__(
        self, engine: Engine, settings: Settings,
        remote: Callable[[], RemoteMentions] = tuple,
        series: Callable[[], SeriesMap | None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.remote = remote
        self.series = series

    def describe(self) -> list[Metric]:
        # Registering must not run a full compute; families are only known at scrape time.
        return []

    def collect(self) -> Iterator[Metric]:
        series = self.series()
        if series is None:
            series = compute(self.engine, self.settings, remote=self.remote())
        for m in ALL_KPIS:
            rows = series.get(m.name)
            if not rows:
                continue
            if m.kind == "summary":
                yield _summary(m, series)
                continue
            fam = GaugeMetricFamily(m.name, m.help, labels=m.labels)
            for labels, value in rows:
                fam.add_metric(labels, value)
            yield fam


def _summary(m: KpiMetric, series: SeriesMap) -> Metric:
    fam = Metric(m.name, m.help, "summary")
    for name in (m.name, *(m.name + part for part in SUMMARY_PARTS)):
        names = m.labels if name == m.name else tuple(x for x in m.labels if x != "quantile")
        for labels, value in series.get(name, ()):
            fam.add_sample(name, dict(zip(names, labels, strict=True)), value)
    return fam


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


ROWS_PER_SLICE = 2_000


def render_text(series: SeriesMap) -> bytes:
    """The KPI families in Prometheus text format, the same text ``generate_latest`` gives for
    ``KpiCollector`` (a test holds them equal), but label sets are formatted once per
    (account, platform, window) rather than once per sample. For large scrapes."""
    return run(render_steps(series))


def render_steps(series: SeriesMap) -> Generator[None, None, bytes]:
    """``render_text`` as steps of ``ROWS_PER_SLICE`` samples (``streams.steps``)."""
    out: list[str] = []
    rows_done = 0
    prefixes: dict[tuple[tuple[str, ...], tuple[str, ...]], str] = {}

    def labelset(names: tuple[str, ...], values: tuple[str, ...]) -> str:
        key = (names, values)
        text = prefixes.get(key)
        if text is None:
            text = prefixes[key] = ",".join(
                f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
        return text

    for m in ALL_KPIS:
        rows = series.get(m.name)
        if not rows:
            continue
        help_text = m.help.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {m.name} {help_text}\n# TYPE {m.name} {m.kind}\n")
        parts = [(m.name, m.labels)]
        if m.kind == "summary":
            base = tuple(x for x in m.labels if x != "quantile")
            parts += [(m.name + part, base) for part in SUMMARY_PARTS]
        for name, names in parts:
            n_base = min(3, len(names))
            head, tail = names[:n_base], names[n_base:]
            for labels, value in series.get(name, ()):
                text = labelset(head, labels[:n_base])
                if tail:
                    text += "," + labelset(tail, labels[n_base:])
                out.append(f"{name}{{{text}}} {_fmt(value)}\n")
                rows_done += 1
                if rows_done % ROWS_PER_SLICE == 0:
                    yield
    return "".join(out).encode()


def consumer_lag(engine: Engine, highwaters: dict[int, int | None]) -> int:
    """Records in the owned partitions that the engine has not read yet."""
    lag = 0
    for p, hw in highwaters.items():
        ps = engine.partitions.get(p)
        if hw is not None and ps is not None:
            lag += max(0, hw - (ps.last_offset + 1))
    return lag


def refresh_health(
    health: Health, engine: Engine, wall_ms: int, highwaters: dict[int, int | None],
    unflushed: int,
) -> None:
    """Scrape-time gauges: computed once per scrape instead of once per event."""
    newest = engine.newest_event_ms()
    if newest >= 0:
        health.newest_event.set(newest / 1000.0)
        health.lag_seconds.set(max(0.0, (wall_ms - newest) / 1000.0))
    health.consumer_lag.set(consumer_lag(engine, highwaters))
    health.unflushed.set(unflushed)
    health.partitions.set(len(engine.partitions))
    health.accounts.set(len([a for a in engine.accounts() if a != OTHER_ACCOUNT]))
