"""Integration tests: each starts its own local Kafka broker (streams.kafka_local)."""
