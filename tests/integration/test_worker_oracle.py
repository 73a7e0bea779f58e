"""A real worker process on a real broker, checked series by series against the oracle.

The input has duplicates, out-of-order and late events and malformed records. The oracle reads
the input back from Kafka (partition and offset included), so it sees exactly what the worker saw.
One run also SIGKILLs the worker halfway and starts a new one on the same group: state comes back
from the changelog and the final numbers must still be exact. The faults of issue #5 (repeated
kills, lost local state, rebalances, graceful stop) are in test_reliability.py.
"""

from __future__ import annotations

import gzip
import platform
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import __version__
from tests.support.harness import (
    _check,
    _produce,
    _records,
    _scrape,
    _wait_caught_up,
)
from tests.support.processes import Broker, WorkerProc, new_worker

pytestmark = pytest.mark.integration


def test_worker_matches_oracle(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path
) -> None:
    records = _records()
    _produce(worker_env, records)
    w = new_worker(worker_env, tmp_path).start()
    workers.append(w)
    w.wait_ready()
    _check(w, worker_env, kafka, len(records), one_process=True)
    # Asked with gzip, as Prometheus asks: the same exposition, compressed, with the process
    # and Python runtime metrics and the build's labels; promtool finds nothing to complain of.
    request = urllib.request.Request(f"{w.url}/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        exposition = gzip.decompress(resp.read()).decode()
    assert "Content-Encoding" not in urllib.request.urlopen(f"{w.url}/metrics").headers
    lint = subprocess.run(["promtool", "check", "metrics"], input=exposition.encode(),
                          capture_output=True, timeout=60)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert families["process_resident_memory_bytes"].samples[0].value > 10 * 2**20
    assert "python_gc_objects_collected" in families and "python_info" in families
    (info,) = families["socialpulse_build_info"].samples
    assert info.labels["version"] == __version__ and info.labels["faust_version"] == "0.15.3"
    assert info.labels["python_version"] == platform.python_version()
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", info.labels["revision"])
    # /kpis answers with the same numbers as /metrics.
    kpis, _ = _scrape(w)
    body = orjson.loads(w.get("/kpis?account=acme&window=5m"))
    assert body["account"] == "acme"
    engagements = body["windows"]["5m"]["all"]["engagements"]
    assert engagements == kpis["social_engagements"][("acme", "all", "5m")] > 0
    assert body["current"]["all"]["pending_responses"] == \
        kpis["social_pending_responses"][("acme", "all")]
    assert set(body["windows"]) == {"5m"}
    with pytest.raises(urllib.error.HTTPError) as missing:
        w.get("/kpis?account=nobody-here")
    assert missing.value.code == 404


def test_kill_and_restart_stays_exact(
    kafka: Broker, worker_env: dict[str, str], workers: list[WorkerProc], tmp_path: Path
) -> None:
    records = _records()
    half = len(records) // 2
    _produce(worker_env, records[:half])
    w = new_worker(worker_env, tmp_path).start()
    workers.append(w)
    w.wait_ready()
    _wait_caught_up(w, half)
    _produce(worker_env, records[half:])
    time.sleep(0.3)  # let it get partway into the second half
    w.kill()  # SIGKILL: no flush, no commit, no goodbye
    w2 = new_worker(worker_env, tmp_path, name="w2").start()
    workers.append(w2)
    w2.wait_ready()
    _check(w2, worker_env, kafka, len(records), one_process=False)
