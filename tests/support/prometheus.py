"""A real Prometheus server driven over its HTTP API, and the Grafana helpers that run the
dashboards' own queries.

``prometheus_server`` (the e2e fixture, module scope) is a factory: it renders nothing itself, it
takes the rule files (see :func:`render_rules`, which renders ``deploy/prometheus/templates`` with
``deploy/render.py``) and the worker addresses, writes a config that scrapes them every
``scrape_interval`` under the job the rules select (``socialpulse``), checks it with ``promtool``
and starts ``/usr/bin/prometheus`` on 127.0.0.1 with a free port and a temporary storage directory.
Every server it started is stopped at teardown, and its log is kept next to its data.

:class:`Prometheus` wraps the HTTP API (``/api/v1/query``, ``query_range``, ``series``,
``alerts``, ``rules``, ``targets``) and reads alerts from the ``ALERTS`` series. The Grafana
helpers at the end substitute dashboard variables the way Grafana does, so that the dashboards'
own queries can be run as they are.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from streams.tools.local_kafka import free_port
from tests.support.processes import ROOT, Broker

DEPLOY = ROOT / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
PROMETHEUS_BIN = "/usr/bin/prometheus"
JOB = "socialpulse"

T = TypeVar("T")


# ----------------------------------------------------------------------------------- polling


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    details: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than None/False, or fail after ``timeout``.

    Exceptions other than assertion errors count as "not yet" (a server still starting); the last
    one is shown if time runs out.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except AssertionError:
            raise
        except Exception as exc:
            value, last_error = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            extra = f"\nlast error: {last_error!r}" if last_error else ""
            extra += f"\n{details()}" if details else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


# -------------------------------------------------------------------------------- render.py


def load_render() -> ModuleType:
    """deploy/render.py, loaded by path (deploy/ is not a package)."""
    name = "socialpulse_deploy_render"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DEPLOY / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def render_rules(params: Any, rules_dir: Path) -> list[Path]:
    """Write the rule files for ``params`` (a ``render.Params``), recording rules first."""
    render = load_render()
    return [Path(p) for p in render.write(params, rules_dir=rules_dir)]


# ------------------------------------------------------------------------------- Prometheus


class PrometheusError(RuntimeError):
    """The HTTP API answered with an error (bad query, server not ready ...)."""


Sample = dict[str, Any]  # one element of a vector or matrix result


@dataclass
class Prometheus:
    """One running Prometheus server and a small client for its HTTP API."""

    port: int
    data_dir: Path
    config_file: Path
    log: Path
    scrape_interval_s: float
    evaluation_interval_s: float
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- process ----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Prometheus:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS_BIN,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
                "--log.level=info",
            ],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.started_at = time.time()
        wait_for(self._ready, timeout=timeout, interval=0.2, what="Prometheus /-/ready",
                 details=self.tail)
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.tail()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def reload(self) -> None:
        """Re-read the config and rule files (``--web.enable-lifecycle``)."""
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # --- HTTP API ---------------------------------------------------------------------------
    def api(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        """GET ``/api/v1/<path>``; returns ``data`` or raises :class:`PrometheusError`."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(list(params))
        try:
            with urllib.request.urlopen(url, timeout=15) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise PrometheusError(f"{path} {dict(params)}: {exc.code} {body.get('error')}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {dict(params)}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Instant query; a scalar result is returned as one sample without labels."""
        params = [("query", expr)]
        if at is not None:
            params.append(("time", f"{at:.3f}"))
        data = self.api("query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Sample]:
        data = self.api("query_range", [("query", expr), ("start", f"{start:.3f}"),
                                        ("end", f"{end:.3f}"), ("step", f"{step:g}")])
        return list(data["result"])

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The value of a one-element instant result, None when empty."""
        result = self.query(expr, at)
        if not result:
            return None
        assert len(result) == 1, f"{expr}: expected one series, got {result}"
        return float(result[0]["value"][1])

    def series_names(self, start: float | None = None) -> set[str]:
        params = [("start", f"{start:.3f}")] if start is not None else []
        return set(self.api("label/__name__/values", params))

    def label_values(self, label: str, match: str, start: float | None = None) -> set[str]:
        params = [("match[]", match)]
        if start is not None:
            params.append(("start", f"{start:.3f}"))
        return set(self.api(f"label/{label}/values", params))

    def alerts(self, alertname: str | None = None, state: str | None = "firing",
               **labels: str) -> list[dict[str, str]]:
        """Label sets of the ``ALERTS`` series now (``state=None``: pending and firing)."""
        matchers = [f'{k}="{v}"' for k, v in labels.items()]
        if alertname is not None:
            matchers.append(f'alertname="{alertname}"')
        if state is not None:
            matchers.append(f'alertstate="{state}"')
        return [s["metric"] for s in self.query("ALERTS{" + ",".join(matchers) + "}")]

    def alerts_seen(self, start: float, matchers: Mapping[str, str] | None = None,
                    end: float | None = None, step: float = 1.0) -> list[dict[str, Any]]:
        """Every ``ALERTS`` series (pending or firing) matching ``matchers`` that existed between
        ``start`` and ``end``, with the first and last time seen (a range query)."""
        # A step past now, so that a sample written in the last second lies on the grid.
        end = time.time() + step if end is None else end
        sel = ",".join(f'{k}="{v}"' for k, v in (matchers or {}).items())
        out = []
        for s in self.query_range("ALERTS{" + sel + "}", start, end, step):
            times = [float(t) for t, _ in s["values"]]
            out.append({"labels": s["metric"], "first": min(times), "last": max(times)})
        return out

    def active_alerts(self) -> list[dict[str, Any]]:
        """``/api/v1/alerts``: pending and firing alerts with ``activeAt``."""
        return list(self.api("alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])


def prometheus_config(
    targets: Sequence[str],
    rule_files: Sequence[Path],
    *,
    scrape_interval_s: float,
    evaluation_interval_s: float,
    job: str = JOB,
) -> dict[str, Any]:
    """A Prometheus config: the workers under ``job``, the given rule files, no Alertmanager."""
    return {
        "global": {
            "scrape_interval": f"{scrape_interval_s:g}s",
            "scrape_timeout": f"{scrape_interval_s:g}s",
            "evaluation_interval": f"{evaluation_interval_s:g}s",
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{
            "job_name": job,
            "metrics_path": "/metrics",
            "static_configs": [{"targets": list(targets)}],
        }],
    }


# ---------------------------------------------------------------------------------- workers


def e2e_worker_env(kafka: Broker, data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment of one e2e worker: own topics, group and port, the wall clock, short windows.

    Like ``tests.conftest.worker_env`` but usable from module-scoped fixtures."""
    run = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALPULSE_")}
    env.update({
        "SOCIALPULSE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "SOCIALPULSE_KAFKA_EMBEDDED": "false",
        "SOCIALPULSE_APP_ID": f"sp-e2e-{run}",
        "SOCIALPULSE_INPUT_TOPIC": f"e2e-in-{run}",
        "SOCIALPULSE_DLQ_TOPIC": f"e2e-dlq-{run}",
        "SOCIALPULSE_TOPIC_PARTITIONS": "3",
        "SOCIALPULSE_DATA_DIR": str(data_dir),
        "SOCIALPULSE_WEB_PORT": str(free_port()),
        "SOCIALPULSE_CLOCK": "wall",
        "SOCIALPULSE_WINDOWS": "1m",
        "SOCIALPULSE_GRACE_SECONDS": "30",
        "SOCIALPULSE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    })
    env.update(overrides)
    return env


# ------------------------------------------------------------------------- PromQL and Grafana

_NOT_METRICS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "offset", "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a conservative lexical scan, as in
    ``tests/unit/deploy``): identifiers that are not functions, keywords, labels or numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+(?::\w+)?\}?", "", text)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[m.end():].lstrip().startswith("("):
            continue
        if m.group(0).lower() not in _NOT_METRICS:
            names.add(m.group(0))
    return names


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str
    instant: bool


@dataclass
class Dashboard:
    name: str
    doc: dict[str, Any]
    variables: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Dashboard:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(path.stem, doc, list(doc.get("templating", {}).get("list", [])))

    def queries(self) -> list[PanelQuery]:
        out: list[PanelQuery] = []

        def walk(panels: list[dict[str, Any]]) -> None:
            for p in panels:
                walk(p.get("panels") or [])
                for t in p.get("targets") or []:
                    if t.get("hide") or not t.get("expr"):
                        continue
                    out.append(PanelQuery(self.name, str(p.get("title")), str(t.get("refId")),
                                          str(t["expr"]), bool(t.get("instant"))
                                          and not t.get("range")))

        walk(self.doc.get("panels") or [])
        return out

    def variable_queries(self) -> dict[str, str]:
        """Variable name -> its ``label_values(...)`` query text, for query variables."""
        out = {}
        for v in self.variables:
            if v.get("type") != "query":
                continue
            q = v.get("query")
            out[v["name"]] = str(q.get("query") if isinstance(q, dict) else q)
        return out

    def current_values(self) -> dict[str, str]:
        """Each variable's saved selection, ``$__all`` replaced by its ``allValue``."""
        out = {}
        for v in self.variables:
            cur = (v.get("current") or {}).get("value")
            if isinstance(cur, list):
                cur = cur[0] if len(cur) == 1 else None
            if cur == "$__all":
                cur = v.get("allValue") or ".*"
            if isinstance(cur, str) and cur:
                out[v["name"]] = cur
        return out


def parse_label_values(text: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (selector, label)."""
    inner = text.strip()
    assert inner.startswith("label_values(") and inner.endswith(")"), text
    selector, sep, label = inner[len("label_values("):-1].rpartition(",")
    assert sep and selector.strip(), f"label_values without a selector: {text}"
    return selector.strip(), label.strip()


def load_dashboards() -> list[Dashboard]:
    return [Dashboard.load(p) for p in sorted(DASHBOARDS.glob("*.json"))]


def _duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def grafana_intervals(range_s: float, scrape_interval_s: float,
                      max_data_points: int = 1000) -> dict[str, str]:
    """Grafana's built-in variables for a time range, with the datasource's scrape interval as
    ``timeInterval`` (the minimum interval): ``$__interval`` = range / max data points, at
    least the scrape interval; ``$__rate_interval`` = max($__interval + scrape, 4 x scrape)."""
    interval = max(scrape_interval_s, range_s / max_data_points)
    rate_interval = max(interval + scrape_interval_s, 4 * scrape_interval_s)
    return {
        "__interval": _duration(interval),
        "__interval_ms": str(int(math.ceil(interval) * 1000)),
        "__rate_interval": _duration(rate_interval),
        "__range": _duration(range_s),
        "__range_s": str(math.ceil(range_s)),
        "__range_ms": str(int(math.ceil(range_s) * 1000)),
    }


_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\[\[(\w+)(?::[\w]+)?\]\]|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables (``$x``, ``${x}``, ``${x:fmt}``, ``[[x]]``) in ``expr``; an
    unknown variable is an error rather than a silently broken query."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(repl, expr)
