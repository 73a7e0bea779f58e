"""Every topic socialpulse reads or writes, declared once (SPEC §5)."""

from __future__ import annotations

from faust.types import TopicT

from streams.worker.app import app, settings


def _raw_topic(name: str, *, acks: bool = True) -> TopicT:
    """A topic of raw bytes, keys and values, with the input's partition count.

    Records stay raw bytes: the engine validates them itself, so that a malformed record reaches
    the dead-letter topic byte for byte instead of failing inside a faust codec. ``acks=False``:
    read by a batch agent (streams.worker.intake), whose acks are one offset per partition after
    a flush, not one per record."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=settings.topic_partitions, acks=acks)


interactions = _raw_topic(settings.input_topic, acks=False)
dead_letters = _raw_topic(settings.dlq_topic)
# Input records whose account lives in another partition (a null or foreign key), forwarded by
# the flusher keyed by the account; read by a batch agent like the input (SPEC §1).
repartitioned = _raw_topic(settings.repartition_topic, acks=False)
# Per-partition mention totals by market, for every worker's share of voice: compacted, written
# by the flusher and read whole by each worker's market board (streams.worker.market_board).
market_mentions = _raw_topic(settings.market_topic)
