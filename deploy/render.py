"""Render socialpulse's Prometheus rules from their templates: the one source of truth.

The templates in ``deploy/prometheus/templates/`` hold the recording and alerting rules with
``${name}`` placeholders for everything one may want to change: the KPI window label the alerts
watch, the baseline offsets, the ``for:`` durations, the SLA and the thresholds. :class:`Params`
declares those names, their defaults and their meaning (and :data:`DERIVED` the few values
computed from them, such as ``${spike_min_samples}``). This module fills them in and writes

* ``deploy/prometheus/rules/recording.yml`` and ``alerts.yml`` (Prometheus ``rule_files``), and
* ``deploy/k8s/prometheusrule.yaml`` (a ``monitoring.coreos.com/v1`` PrometheusRule with the same
  groups, for the Prometheus Operator).

The committed files are the output for the default :class:`Params`; a unit test checks that they
are. Tests that run a real Prometheus with short windows render a fast variant instead::

    python deploy/render.py                          # rewrite the committed default files
    python deploy/render.py --check                  # exit 1 if a committed file is stale
    python deploy/render.py --preset fast --out /tmp/rules
    python deploy/render.py --set window=5m --set min_impressions=200 --out /tmp/rules
    python deploy/render.py --list                   # every parameter with its default

or from Python (the file is not part of a package: load it by path with
``importlib.util.spec_from_file_location`` as ``tests/unit/deploy/test_deploy.py`` does, and
register it in ``sys.modules`` before executing it)::

    render.write(render.Params.fast(window="1m", interval="5s"), rules_dir=tmp_path)

Template syntax: ``${name}`` is replaced by the parameter's value, ``$$`` by ``$`` and lines
starting with ``##`` are template-only comments. Go template text such as ``{{ $labels.account }}``
is left alone. Only the standard library and PyYAML are used.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

DEPLOY_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = DEPLOY_DIR / "prometheus" / "templates"
RULES_DIR = DEPLOY_DIR / "prometheus" / "rules"
K8S_RULE_FILE = DEPLOY_DIR / "k8s" / "prometheusrule.yaml"
#: Rendered rule files, in the order Prometheus should load them (recording rules first).
RULE_FILES: tuple[str, ...] = ("recording.yml", "alerts.yml")

_PLACEHOLDER = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")
# A Prometheus duration: 1d, 90m, 1h30m, 500ms, 0s ...
_DURATION = re.compile(r"^(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
# A label value or job name we are willing to put between double quotes in PromQL.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:/-]+$")


def _p(default: Any, kind: str, help: str) -> Any:
    return field(default=default, metadata={"kind": kind, "help": help})


@dataclass(frozen=True, slots=True)
class Params:
    """Everything the rule templates leave open, with the production defaults."""

    # What the alerts select.
    window: str = _p("1h", "label", "window label value the KPI alerts watch")
    platform: str = _p("all", "label", "platform label value the KPI alerts watch")
    job: str = _p("socialpulse", "label", "scrape job of the workers")
    # Evaluation and look-back.
    interval: str = _p("1m", "duration", "evaluation interval of every rule group")
    baseline_day: str = _p("1d", "duration", "offset of the 'day' baselines")
    baseline_week: str = _p("7d", "duration", "offset of the 'week' baselines")
    spike_lookback: str = _p("12h", "duration", "history a spike is compared with")
    spike_offset: str = _p("1h", "duration", "gap before that history (use the window length)")
    spike_min_history: float = _p(
        0.75, "number", "share of spike_lookback that must be recorded for a spike alert (0-1]"
    )
    growth_range: str = _p("30m", "duration", "range over which overdue replies must grow")
    rate_range: str = _p("5m", "duration", "range of rate() in pipeline alerts")
    lag_range: str = _p("10m", "duration", "range of deriv() of the consumer lag")
    # for: durations.
    for_drop: str = _p("30m", "duration", "for: of EngagementRateDrop, ConversionRateDrop")
    for_zero: str = _p("30m", "duration", "for: of EngagementZero")
    for_care: str = _p("15m", "duration", "for: of ResponseTimeSLA, OverdueRepliesPiling")
    for_spike: str = _p("15m", "duration", "for: of NegativeSentimentSpike, MentionSpike")
    for_pipeline: str = _p("10m", "duration", "for: of NoEvents, DeadLetterRateHigh, LagGrowing")
    for_down: str = _p("5m", "duration", "for: of SocialpulseWorkerDown")
    # Thresholds.
    response_sla_seconds: float = _p(3600, "number", "p90 response time SLA, seconds")
    drop_factor: float = _p(0.5, "number", "a ratio 'dropped' at <= this x its baseline")
    min_impressions: float = _p(1000, "number", "impressions in the window, now and at baseline")
    min_clicks: float = _p(100, "number", "clicks in the window, now and at baseline")
    overdue_min: float = _p(10, "number", "overdue replies above which piling up pages")
    mention_spike_factor: float = _p(3, "number", "mentions over this x their average")
    min_mentions: float = _p(20, "number", "mentions in the window for a spike to count")
    negative_spike_factor: float = _p(2, "number", "negative share over this x its average")
    negative_share_floor: float = _p(0.3, "number", "and over this share in absolute terms")
    min_sentiment_messages: float = _p(20, "number", "comments + mentions in the window")
    dead_letter_ratio: float = _p(0.05, "number", "rejected / consumed records")
    lag_records: float = _p(10000, "number", "consumer lag (records) that may page")
    # Annotations.
    runbook_base: str = _p("deploy/RUNBOOK.md", "text", "runbook URL without the #anchor")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kind = f.metadata["kind"]
            if kind == "duration" and not (isinstance(value, str) and _DURATION.match(value)):
                raise ValueError(f"{f.name}: not a Prometheus duration: {value!r}")
            if kind == "label" and not (isinstance(value, str) and _LABEL_VALUE.match(value)):
                raise ValueError(f"{f.name}: not a safe label value: {value!r}")
            if kind == "number" and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ValueError(f"{f.name}: not a non-negative number: {value!r}")
            if kind == "text" and (not isinstance(value, str) or '"' in value or "\n" in value):
                raise ValueError(f"{f.name}: text must be one line without double quotes")
        if not 0 < self.spike_min_history <= 1:
            raise ValueError(f"spike_min_history: not in (0, 1]: {self.spike_min_history!r}")
        if seconds(self.spike_lookback) < seconds(self.interval):
            raise ValueError("spike_lookback: shorter than the evaluation interval")

    @classmethod
    def fast(cls, window: str = "1m", interval: str = "5s", **overrides: Any) -> Params:
        """Short durations for tests against a live Prometheus with short KPI windows.

        Thresholds keep their defaults; pass them in ``overrides`` to suit the test's traffic.
        """
        base: dict[str, Any] = {
            "window": window,
            "interval": interval,
            "baseline_day": "2m",
            "baseline_week": "4m",
            "spike_lookback": "5m",
            "spike_offset": window,
            "growth_range": "30s",
            "rate_range": "30s",
            "lag_range": "30s",
            "for_drop": "10s",
            "for_zero": "10s",
            "for_care": "10s",
            "for_spike": "10s",
            "for_pipeline": "10s",
            "for_down": "10s",
        }
        base.update(overrides)
        return cls(**base)

    def spike_min_samples(self) -> int:
        """Samples of the recorded KPI a spike alert's history must hold.

        The recording rules write one sample per ``interval``, so a history that covers
        ``spike_min_history`` of ``spike_lookback`` holds this many. A younger history (a new
        account, a freshly started Prometheus) starts with a window filling up from zero, and its
        average would make steady traffic look like a spike."""
        ratio = seconds(self.spike_lookback) / seconds(self.interval)
        return max(1, math.ceil(self.spike_min_history * ratio - 1e-9))

    def values(self) -> dict[str, str]:
        """The placeholder values as they appear in the rendered text (derived ones included)."""
        out = {f.name: _format(getattr(self, f.name)) for f in fields(self)}
        out.update({name: _format(compute(self)) for name, (compute, _) in DERIVED.items()})
        return out

    def changed(self) -> dict[str, str]:
        """The parameters that differ from the defaults (derived values left out)."""
        default = Params().values()
        return {
            f.name: v
            for f in fields(self)
            if default[f.name] != (v := _format(getattr(self, f.name)))
        }


#: Placeholders computed from the parameters: name -> (function of Params, meaning).
DERIVED: dict[str, tuple[Callable[[Params], Any], str]] = {
    "spike_min_samples": (
        Params.spike_min_samples,
        "samples in spike_lookback a spike alert needs: spike_min_history x lookback / interval",
    ),
}

# Seconds per unit, in the order of the groups of _DURATION.
_UNITS: tuple[tuple[str, float], ...] = (
    ("y", 365 * 86400),
    ("w", 7 * 86400),
    ("d", 86400),
    ("h", 3600),
    ("m", 60),
    ("s", 1),
    ("ms", 0.001),
)


def seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as ``1h30m``."""
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(
        int(part[: -len(unit)]) * factor
        for part, (unit, factor) in zip(match.groups(), _UNITS, strict=True)
        if part
    )


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


PRESETS: dict[str, Callable[..., Params]] = {"default": Params, "fast": Params.fast}


def render_text(template: str, params: Params) -> str:
    """Fill a template: drop ``##`` lines, replace ``${name}`` and ``$$``."""
    values = params.values()
    kept = "".join(line for line in template.splitlines(keepends=True) if not line.startswith("##"))

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        if name not in values:
            raise KeyError(f"unknown template parameter ${{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(substitute, kept)


def _header(source: str, params: Params) -> str:
    lines = [
        f"# Generated by deploy/render.py from {source}: do not edit by hand.",
        "# Change the template or the parameters and run `python deploy/render.py`.",
    ]
    changed = params.changed()
    if changed:
        lines.append("# Parameters: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    return "\n".join(lines) + "\n"


def render_rules(params: Params | None = None) -> dict[str, str]:
    """File name -> text of each rule file (see :data:`RULE_FILES`)."""
    params = params or Params()
    out: dict[str, str] = {}
    for name in RULE_FILES:
        template = TEMPLATES_DIR / f"{name}.tmpl"
        text = _header(f"deploy/prometheus/templates/{template.name}", params)
        text += render_text(template.read_text(encoding="utf-8"), params)
        document = yaml.safe_load(text)
        if not isinstance(document, dict) or not document.get("groups"):
            raise ValueError(f"{template}: rendered text has no rule groups")
        out[name] = text
    return out


class _Dumper(yaml.SafeDumper):
    """Block style everywhere; multi-line strings (PromQL) as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render_prometheus_rule(params: Params | None = None, name: str = "socialpulse") -> str:
    """A Prometheus Operator PrometheusRule holding the groups of every rule file."""
    params = params or Params()
    groups: list[Any] = []
    for text in render_rules(params).values():
        groups.extend(yaml.safe_load(text)["groups"])
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "socialpulse",
                "app.kubernetes.io/component": "monitoring",
                # kube-prometheus-stack selects rules by its Helm release label by default.
                "release": "prometheus",
            },
        },
        "spec": {"groups": groups},
    }
    body = yaml.dump(resource, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    header = _header("deploy/prometheus/templates/*.tmpl", params)
    header += "# The `release` label must match your Prometheus' ruleSelector.\n"
    return header + body


def outputs(
    params: Params | None = None, rules_dir: Path = RULES_DIR, k8s_file: Path | None = K8S_RULE_FILE
) -> dict[Path, str]:
    """Path -> text of every file :func:`write` would write."""
    params = params or Params()
    files = {Path(rules_dir) / n: t for n, t in render_rules(params).items()}
    if k8s_file is not None:
        files[Path(k8s_file)] = render_prometheus_rule(params)
    return files


def write(
    params: Params | None = None, rules_dir: Path = RULES_DIR, k8s_file: Path | None = None
) -> list[Path]:
    """Write the rule files to ``rules_dir`` (and the PrometheusRule to ``k8s_file``)."""
    written = []
    for path, text in outputs(params, rules_dir, k8s_file).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(
    params: Params | None = None, rules_dir: Path = RULES_DIR, k8s_file: Path | None = K8S_RULE_FILE
) -> list[Path]:
    """Files whose content differs from what :func:`write` would write."""
    return [
        path
        for path, text in outputs(params, rules_dir, k8s_file).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    kinds = {f.name: f.metadata["kind"] for f in fields(Params)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in kinds:
            raise SystemExit(f"--set wants NAME=VALUE with NAME one of {', '.join(kinds)}: {item}")
        out[key] = float(value) if kinds[key] == "number" else value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one parameter (repeatable)",
    )
    parser.add_argument("--out", type=Path, help="rules directory (default: the committed one)")
    parser.add_argument(
        "--k8s", type=Path, help="PrometheusRule file (default: the committed one, unless --out)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file differs from the rendering",
    )
    parser.add_argument("--list", action="store_true", help="print the parameters and exit")
    args = parser.parse_args(argv)

    if args.list:
        for f in fields(Params):
            print(f"{f.name:24} {_format(f.default):18} {f.metadata['help']}")
        for name, (compute, meaning) in DERIVED.items():
            print(f"{name:24} {_format(compute(Params())):18} (derived) {meaning}")
        return 0
    try:
        params = PRESETS[args.preset](**_parse_set(args.set))
    except ValueError as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2
    rules_dir = args.out or RULES_DIR
    k8s_file = args.k8s or (None if args.out else K8S_RULE_FILE)
    if args.check:
        bad = stale(params, rules_dir, k8s_file)
        for path in bad:
            print(f"stale: {path} (run python deploy/render.py)", file=sys.stderr)
        return 1 if bad else 0
    for path in write(params, rules_dir, k8s_file):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
