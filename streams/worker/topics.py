"""Every topic socialpulse reads or writes, declared once (SPEC §5)."""

from __future__ import annotations

from streams.worker.app import app, settings

# Records stay raw bytes: the engine validates them itself, so that a malformed record reaches
# the dead-letter topic byte for byte instead of failing inside a faust codec. A batch agent reads
# it (streams.worker.intake): acks are one offset per partition after a flush, not one per record.
interactions = app.topic(
    settings.input_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    acks=False,
)
dead_letters = app.topic(
    settings.dlq_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
)
# Input records whose account lives in another partition (a null or foreign key), forwarded by
# the flusher keyed by the account; read by a batch agent like the input (SPEC §1).
repartitioned = app.topic(
    settings.repartition_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    acks=False,
)
# Per-partition mention totals by market, for every worker's share of voice: compacted, written
# by the flusher and read whole by each worker's market board (streams.worker.market_board).
market_mentions = app.topic(
    settings.market_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
)
