"""Test helpers shared by the suites: data sets, the oracle, worker and broker processes, the
Prometheus driver, the integration harness. Fixtures live in the conftest files."""
