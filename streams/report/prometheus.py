"""A small client of Prometheus's HTTP API (``/api/v1``): instant and range queries, and the
server's retention; every failure is a ``ReportError`` of one line.

The standard library's ``urllib`` is enough for a command that asks a few dozen questions; queries
go as POST forms so that a long selector is never cut by a URL limit.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson

from streams.report.model import ReportError


class RangeSeries(NamedTuple):
    """One series of a range query: its labels (``__name__`` included when PromQL kept it)
    and its (unix seconds, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class InstantSample(NamedTuple):
    labels: dict[str, str]
    value: float


_DURATION_PART = re.compile(r"(\d+)(ms|[smhdwy])")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400,
                 "y": 365 * 86400}


def parse_duration(text: str) -> timedelta | None:
    """A Prometheus duration ("15d", "1h30m") as a timedelta; None for anything else."""
    text = text.strip()
    if not text or _DURATION_PART.sub("", text):
        return None
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u]
                                 for n, u in _DURATION_PART.findall(text)))


def promql_duration(delta: timedelta) -> str:
    """A timedelta as a PromQL range ("86400s"), whole seconds, at least 1s."""
    return f"{max(1, int(delta.total_seconds()))}s"


class PrometheusApi:
    """The HTTP API of the Prometheus at ``base_url``."""

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, path: str, form: dict[str, str] | None = None) -> Any:
        url = f"{self.base_url}/api/v1/{path}"
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_of(exc.read())
            raise ReportError(f"Prometheus at {self.base_url} refused {path}: HTTP {exc.code}"
                              f"{': ' + detail if detail else ''}") from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReportError(f"cannot reach Prometheus at {self.base_url}: {reason}") from None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ReportError(f"{url} did not answer as Prometheus's API does (not JSON): is "
                              "that the address of a Prometheus server?") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            detail = answer.get("error", "") if isinstance(answer, dict) else ""
            raise ReportError(f"Prometheus at {self.base_url} failed {path}: {detail}")
        return answer.get("data")

    def query(self, expr: str, at: datetime) -> list[InstantSample]:
        data = self._call("query", {"query": expr, "time": f"{at.timestamp():.3f}"})
        return [InstantSample(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_range(
        self, expr: str, start: datetime, end: datetime, step: timedelta
    ) -> list[RangeSeries]:
        data = self._call("query_range", {
            "query": expr, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}",
            "step": f"{max(step.total_seconds(), 0.001):.3f}",
        })
        return [RangeSeries(r["metric"], [(float(t), float(v)) for t, v in r["values"]])
                for r in data["result"]]

    def retention(self) -> timedelta | None:
        """How far back the server keeps samples (its ``storageRetention``, e.g. "15d" or
        "15d or 10GiB"); None when it does not say in time units."""
        info = self._call("status/runtimeinfo")
        text = str(info.get("storageRetention", "")) if isinstance(info, dict) else ""
        for part in text.split(" or "):
            found = parse_duration(part)
            if found is not None:
                return found
        return None


def _error_of(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip().splitlines()[0][:200] if body else ""
    return str(obj.get("error", ""))[:200] if isinstance(obj, dict) else ""
