"""The demo's Prometheus and Alertmanager: Debian's servers on loopback, with the project's rules.

The rules come from ``deploy/render.py`` (the one source of the rule files), in the fast variant the
e2e tests use: they watch the ``1m`` window (the demo's worker adds it to its windows), evaluate
every 5 s, hold an alert 10 s before it fires, and compare with a "day" baseline taken 1 minute
earlier, so that a scenario shows within minutes what the production rules would say in hours.
Alertmanager runs with ``deploy/alertmanager/alertmanager.yml`` as it is (its receivers are
placeholders, so its notifications fail in its log) and without its cluster port (9094 would be
taken by it; 9093 is the local Kafka's controller).
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from streams.tools.demo.processes import Child
from streams.tools.preflight import CliError
from streams.tools.ready import wait_ready

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
PROMETHEUS_BIN = "prometheus"
ALERTMANAGER_BIN = "prometheus-alertmanager"  # Debian's name; upstream's is alertmanager
#: The KPI window the demo's rules watch, which the demo's worker keeps beside its own.
RULE_WINDOW = "1m"
SCRAPE_INTERVAL_S = 2.0
EVALUATION_INTERVAL = "5s"
#: The "day" baseline of the demo's rules: one minute earlier.
BASELINE_DAY = "1m"
#: Seconds of normal traffic before a scenario starts, so that the rules' baselines exist: a full
#: 1m window, then one more minute for the baseline of the window just before the scenario, and
#: a margin for the first scrapes.
SCENARIO_AFTER_S = 150.0
JOB = "socialpulse"


def load_render() -> ModuleType:
    """``deploy/render.py``, loaded by path (``deploy/`` is not a package)."""
    name = "socialpulse_deploy_render"
    if name in sys.modules:
        return sys.modules[name]
    path = DEPLOY / "render.py"
    if not path.is_file():
        raise CliError(f"the demo's alerting needs the repository's {path}; "
                       "run from a checkout, or pass --no-prometheus")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rule_params(response_sla_seconds: float) -> Any:
    """The fast rules for the demo's window, with the worker's response SLA."""
    render = load_render()
    return render.Params.fast(window=RULE_WINDOW, interval=EVALUATION_INTERVAL,
                              baseline_day=BASELINE_DAY, baseline_week="2m",
                              response_sla_seconds=response_sla_seconds)


def prometheus_config(worker: str, alertmanager: str | None,
                      rule_files: Sequence[Path]) -> dict[str, Any]:
    """Scrape the worker under the job the rules select; alerts to the Alertmanager."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S:g}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S:g}s",
            "evaluation_interval": EVALUATION_INTERVAL,
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{
            "job_name": JOB,
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [worker]}],
        }],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if path is None:
        raise CliError(f"{name} not found: run scripts/setup (Debian packages prometheus and "
                       "prometheus-alertmanager), or pass --no-prometheus")
    return path


@dataclass(frozen=True)
class Server:
    """A started server and the address it answers on."""

    child: Child
    url: str

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until ``/-/ready`` answers 200; a server that exits first is an error."""
        wait_ready(self.url, what=self.child.name, timeout_s=timeout_s,
                   running=self.child.running, log=self.child.log)


@dataclass(frozen=True)
class Monitoring:
    """Where the demo's servers live: ports on 127.0.0.1 and a directory for their files."""

    directory: Path
    prometheus_port: int
    alertmanager_port: int

    def check_ports(self) -> None:
        for name, port, var in (("Prometheus", self.prometheus_port, "DEMO_PROMETHEUS_PORT"),
                                ("Alertmanager", self.alertmanager_port,
                                 "DEMO_ALERTMANAGER_PORT")):
            if not port_free(port):
                raise CliError(f"port {port} for the demo's {name} is in use: stop what holds "
                               f"it, set SOCIALPULSE_{var}, or pass --no-prometheus")

    def alertmanager(self) -> Server:
        binary = _binary(ALERTMANAGER_BIN)
        address = f"127.0.0.1:{self.alertmanager_port}"
        child = Child("Alertmanager", [
            binary, f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={self.directory / 'alertmanager'}",
            f"--web.listen-address={address}",
            "--cluster.listen-address=",  # one instance: no gossip port
        ], self.directory / "alertmanager.log")
        child.start()
        return Server(child, f"http://{address}")

    def prometheus(self, worker: str, alertmanager: Server | None,
                   response_sla_seconds: float) -> Server:
        binary = _binary(PROMETHEUS_BIN)
        rules = [Path(p) for p in load_render().write(rule_params(response_sla_seconds),
                                                       rules_dir=self.directory / "rules")]
        config_file = self.directory / "prometheus.yml"
        am = alertmanager.url.removeprefix("http://") if alertmanager else None
        config_file.write_text(yaml.safe_dump(prometheus_config(worker, am, rules),
                                              sort_keys=False), encoding="utf-8")
        address = f"127.0.0.1:{self.prometheus_port}"
        child = Child("Prometheus", [
            binary, f"--config.file={config_file}",
            f"--storage.tsdb.path={self.directory / 'prometheus'}",
            f"--web.listen-address={address}",
            "--storage.tsdb.retention.time=15d",
        ], self.directory / "prometheus.log")
        child.start()
        return Server(child, f"http://{address}")
