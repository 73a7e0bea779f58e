"""socialpulse test suite: unit, integration (real Kafka) and e2e (Kafka, worker, Prometheus)."""
