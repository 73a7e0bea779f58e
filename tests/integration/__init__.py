"""Integration tests: each starts its own local Kafka broker (streams.tools.local_kafka)."""
