"""End-to-end fixtures: ``prometheus_server``, a factory of real Prometheus servers scraping real
worker processes (``tests.support.prometheus`` has the driver and the helpers)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from streams.tools.local_kafka import free_port
from tests.support.prometheus import PROMETHEUS_BIN, Prometheus, prometheus_config


@pytest.fixture(scope="module")
def prometheus_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Prometheus]]:
    """Factory ``start(targets, rule_files, scrape_interval_s=1, evaluation_interval_s=2)``:
    a real Prometheus on a free loopback port; all of them are stopped at teardown."""
    if not (os.path.isfile(PROMETHEUS_BIN) and os.access(PROMETHEUS_BIN, os.X_OK)):
        pytest.fail(f"{PROMETHEUS_BIN} not found: run scripts/setup (Debian package prometheus)",
                    pytrace=False)
    started: list[Prometheus] = []

    def start(
        targets: Sequence[str],
        rule_files: Sequence[Path],
        *,
        scrape_interval_s: float = 1.0,
        evaluation_interval_s: float = 2.0,
    ) -> Prometheus:
        data_dir = tmp_path_factory.mktemp("prometheus")
        config_file = data_dir / "prometheus.yml"
        config = prometheus_config(targets, rule_files, scrape_interval_s=scrape_interval_s,
                                   evaluation_interval_s=evaluation_interval_s)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        check = subprocess.run([promtool, "check", "config", str(config_file)],
                               capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode == 0, f"promtool check config:\n{check.stdout}{check.stderr}"
        server = Prometheus(port=free_port(), data_dir=data_dir, config_file=config_file,
                            log=data_dir / "prometheus.log", scrape_interval_s=scrape_interval_s,
                            evaluation_interval_s=evaluation_interval_s)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
