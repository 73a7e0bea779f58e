"""The benchmark harness (``python -m bench --tiny``) runs end to end on the suite's broker.

Only that it completes and reports every section with numbers: the figures of a seconds-long run
on a shared machine mean nothing, so nothing here depends on how fast anything was.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT, Broker

pytestmark = pytest.mark.integration

SECTIONS = ("THROUGHPUT", "LATENCY", "SCRAPE COST", "MEMORY", "DAY AT SCALE")


def _sections(text: str) -> dict[str, str]:
    """Section title -> its body, from the printed report."""
    parts = re.split(r"^== ([A-Z ]+?) \(.*\) ==$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.timeout(240)
def test_bench_tiny_reports_every_section(kafka: Broker, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--bootstrap", kafka.bootstrap,
         "--json", str(report), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=220,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    sections = _sections(proc.stdout)
    for name in SECTIONS:
        assert name in sections, f"section {name} missing:\n{proc.stdout}"
        assert re.search(r"\d", sections[name]), f"section {name} has no numbers"
        assert "not measured" not in sections[name], sections[name]

    res = json.loads(report.read_text())
    rows = {r["key"]: r for r in res["throughput"]}
    for key in ("raw", "naive_faust", "socialpulse_alo"):
        assert rows[key]["status"] == "ok", rows[key]
        for field in ("events", "seconds", "eps", "cpu_us", "rss_mib"):
            assert _number(rows[key][field]) and rows[key][field] > 0, (key, field, rows[key])
    # exactly_once and Quix are reported whatever happens to them (Quix needs its own venv).
    assert rows["socialpulse_eos"]["status"] in ("ok", "failed")
    assert rows["quix"]["status"] in ("ok", "failed", "skipped")
    assert res["latency"]["probes_seen"] > 0
    for field in ("p50_ms", "p99_ms"):
        assert _number(res["latency"][field])
    for field in ("series", "render_ms_median", "stall_ms_max_during_scrape"):
        assert _number(res["scrape"][field]) and res["scrape"][field] > 0
    for field in ("events", "rss_mib", "peak_rss_mib"):
        assert _number(res["memory"][field]) and res["memory"][field] > 0
    day = res["scale"]
    # a quarter, half and all of the records (about 12,000: the simulator's periodic records)
    assert [p["target"] for p in day["points"]][:2] == [3_000, 6_000]
    assert day["points"][-1]["events"] == day["exactness"]["records"]
    ex = day["exactness"]
    assert ex["duplicates_expected"] > 0 and ex["lost"] == 0 and ex["doubled"] == 0, ex
    assert ex["duplicates_counted"] == ex["duplicates_expected"], ex
    assert day["largest_state_record_bytes"]["bytes"] > 0
    rec = day["recovery"]
    assert rec["kpi_differences"] == [] and rec["kpi_series_compared"] > 0, rec
    assert _number(rec["equal_kpis_s"]) and _number(rec["consuming_s"]), rec
