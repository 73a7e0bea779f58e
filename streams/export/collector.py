"""The KPI Collector: builds every KPI metric family from the engine's series at scrape time.

Nothing KPI-related is a long-lived prometheus-client object: a series exists exactly while the
engine has it, so a lost partition's accounts disappear with it and a ratio with a zero
denominator is simply not emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.core.catalogue import ALL_KPIS, KpiMetric, part_names
from streams.core.engine import Engine
from streams.core.series import RemoteMentions, SeriesMap, compute
from streams.settings import Settings


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
            parts = part_names(m)
            if not series.get(parts[0][0]):
                continue
            if m.kind != "gauge":
                yield _family(m, parts, series)
                continue
            rows = series[m.name]
            fam = GaugeMetricFamily(m.name, m.help, labels=m.labels)
            for labels, value in rows:
                fam.add_metric(labels, value)
            yield fam


def _family(
    m: KpiMetric, parts: list[tuple[str, tuple[str, ...]]], series: SeriesMap
) -> Metric:
    """A summary, counter or histogram family with all of its samples."""
    # prometheus-client names a counter family without its ``_total`` (and writes it back)
    fam = Metric(m.name.removesuffix("_total") if m.kind == "counter" else m.name, m.help,
                 m.kind)
    for name, names in parts:
        for labels, value in series.get(name, ()):
            fam.add_sample(name, dict(zip(names, labels, strict=True)), value)
    return fam
