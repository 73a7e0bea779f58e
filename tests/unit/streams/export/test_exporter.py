"""The Collector on its own registry: families, labels, absent ratios, promtool's lint."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.build import build_info
from streams.core.catalogue import ALL_KPIS, KpiMetric
from streams.core.engine import Engine
from streams.core.series import compute
from streams.export.collector import KpiCollector
from streams.export.exposition import render_text
from streams.export.health import Health, refresh_health
from streams.settings import Settings

T0 = 1_800_000_000_000


def _engine() -> tuple[Engine, Settings]:
    s = Settings(clock="event", windows=["5m", "1h"])
    e = Engine(s, now_ms=lambda: T0)
    recs: list[dict[str, Any]] = [
        {"type": "impression", "user_id": "u1"},
        {"type": "comment", "needs_response": True, "sentiment": 0.9, "event_id": "c1"},
        {"type": "reply", "in_reply_to": "c1", "ts": T0 + 60_000},
        {"type": "purchase", "amount": 12.5, "currency": "EUR", "user_id": "u1"},
    ]
    e.ingest_batch(
        (0, i, b"acme", orjson.dumps({"event_id": f"e{i}", "ts": T0, "account": "acme",
                                      "platform": "x", **r}))
        for i, r in enumerate(recs)
    )
    return e, s


def _exposition() -> str:
    e, s = _engine()
    registry = CollectorRegistry()
    registry.register(KpiCollector(e, s))
    health = Health(registry, build_info())
    refresh_health(health, e, T0 + 61_000, {0: 4}, unflushed=4)
    return generate_latest(registry).decode()


def test_families_and_labels_follow_the_catalogue() -> None:
    parsed = list(text_string_to_metric_families(_exposition()))
    families = {f.name: f for f in parsed if f.type != "counter"}
    # The parser names a counter family without its _total: social_impressions_total and the
    # gauge social_impressions are two families of the same name to it (not to Prometheus).
    by_name: dict[tuple[str, str], KpiMetric] = {
        (m.name.removesuffix("_total") if m.kind == "counter" else m.name, m.kind): m
        for m in ALL_KPIS}
    kinds = {m.kind for m in ALL_KPIS}
    assert {"gauge", "summary", "counter", "histogram"} <= kinds
    assert {f.type for f in parsed if f.name.startswith("social_")} == kinds
    for fam in parsed:
        if fam.name.startswith("social_"):
            m = by_name[(fam.name, fam.type)]
            for sample in fam.samples:
                expected = set(m.labels)
                if sample.name.endswith(("_count", "_sum")):
                    expected.discard("quantile")
                if sample.name.endswith("_bucket"):
                    expected.add("le")
                assert set(sample.labels) == expected, (sample.name, sample.labels)
    assert families["social_response_time_seconds"].type == "summary"
    assert families["socialpulse_consumer_lag_records"].samples[0].value == 0


def test_ratio_with_zero_denominator_is_absent() -> None:
    text = _exposition()
    assert 'social_engagement_rate_ratio{account="acme",platform="x",window="5m"} 1.0' in text
    assert "social_click_through_ratio" in text  # impressions > 0: present (0 clicks)
    assert "social_bounce_ratio" not in text  # no visits: absent, not 0, not NaN
    assert "NaN" not in text


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/setup"
    out = subprocess.run([promtool, "check", "metrics"], input=_exposition().encode(),
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()


def test_fast_renderer_equals_the_collector() -> None:
    e, s = _engine()
    registry = CollectorRegistry()
    registry.register(KpiCollector(e, s))
    slow = generate_latest(registry).decode()
    fast = render_text(compute(e, s)).decode()

    def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {(x.name, tuple(sorted(x.labels.items())), x.value)
                for f in text_string_to_metric_families(text) for x in f.samples}

    assert samples(fast) == samples(slow) and len(samples(fast)) > 50
    types = {f.name: f.type for f in text_string_to_metric_families(fast)}
    assert types == {f.name: f.type for f in text_string_to_metric_families(slow)}
