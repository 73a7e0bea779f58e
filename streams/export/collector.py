"""The KPI Collector: builds every KPI metric family from the engine's series at scrape time.

Nothing KPI-related is a long-lived prometheus-client object: a series exists exactly while the
engine has it, so a lost partition's accounts disappear with it and a ratio with a zero
denominator is simply not emitted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.core.catalogue import ALL_KPIS, SUMMARY_PARTS, KpiMetric
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
