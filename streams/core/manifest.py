"""The state manifest: the settings a partition's state was built with, stored beside it.

Bucket keys carry a window's index, not its length, and the changelog is co-partitioned with the
input: state built with other windows, or for an input with another partition count, would be
read wrongly (5m buckets read as 1m ones) or not at all (an index past the windows). Each
partition's state therefore holds one manifest record, written when the state is created, and a
worker whose settings do not match it refuses to start (SPEC §5) instead of reinterpreting it.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from streams.core.windows import Window

# The layout of the state records (keys, encodings). A worker refuses state of another version.
STATE_VERSION = 1


class StateMismatch(ValueError):
    """The state found does not fit the settings; the message is one line naming the setting."""


@dataclass(frozen=True)
class StateManifest:
    version: int
    windows: tuple[str, ...]  # labels, shortest first, as the state's resolutions
    windows_ms: tuple[int, ...]
    input_topic: str
    input_partitions: int

    @classmethod
    def of(cls, windows: tuple[Window, ...], input_topic: str, input_partitions: int
           ) -> StateManifest:
        return cls(STATE_VERSION, tuple(w.label for w in windows),
                   tuple(w.length_ms for w in windows), input_topic, input_partitions)

    def encode(self) -> bytes:
        return orjson.dumps({"version": self.version, "windows": self.windows,
                             "windows_ms": self.windows_ms, "input_topic": self.input_topic,
                             "input_partitions": self.input_partitions})

    @classmethod
    def decode(cls, data: bytes) -> StateManifest:
        obj = orjson.loads(data)
        return cls(int(obj["version"]), tuple(obj["windows"]), tuple(obj["windows_ms"]),
                   str(obj["input_topic"]), int(obj["input_partitions"]))

    def check(self, wanted: StateManifest, partition: int) -> None:
        """Raise ``StateMismatch`` unless state described by ``self`` can serve ``wanted``."""
        where = f"the state of partition {partition}"
        if self.version != wanted.version:
            raise StateMismatch(
                f"{where} has layout version {self.version}, this worker reads version "
                f"{wanted.version}: run the version that wrote it, or replay into a new "
                "SOCIALPULSE_APP_ID")
        if self.windows_ms != wanted.windows_ms:
            raise StateMismatch(
                f"SOCIALPULSE_WINDOWS is {','.join(wanted.windows)} but {where} was built with "
                f"{','.join(self.windows)}: set it back, or replay the input into a new "
                "SOCIALPULSE_APP_ID (README: changing windows)")
        if self.input_topic != wanted.input_topic:
            raise StateMismatch(
                f"SOCIALPULSE_INPUT_TOPIC is {wanted.input_topic} but {where} was built from "
                f"{self.input_topic}: set it back, or use a new SOCIALPULSE_APP_ID")
        if self.input_partitions != wanted.input_partitions:
            raise StateMismatch(
                f"topic {wanted.input_topic} has {wanted.input_partitions} partitions but "
                f"{where} was built for {self.input_partitions}: an account's events would move "
                "between partitions; restore the count, or replay into a new SOCIALPULSE_APP_ID "
                "(README: growing the input topic)")


def check_offsets(
    topic: str, partition: int, group: str, flushed: int, committed: int | None, end: int,
    stored: int = -1, found: int | None = None,
) -> None:
    """Raise ``StateMismatch`` unless a partition's state and its input fit together.

    ``flushed``: the last input offset the state covers (-1: no state); ``committed``: the
    group's committed offset on the broker (None: none); ``end``: the input's log end offset;
    ``stored``: the mark's fingerprint of the record at ``flushed`` (-1: unknown); ``found``: the
    fingerprint of the record there now (None: not read, e.g. deleted by retention).

    Kafka's metadata carries no topic id for aiokafka to compare, so a recreated input shows as an
    input that ends below what the state covers, or as another record at the mark's offset; and
    an empty state beside committed offsets is a deleted changelog (commits only follow marks).
    Marks beside no committed offset are fine: a crash before the first commit, or expired group
    offsets; the input is read again from its start and what the marks cover is skipped."""
    where = f"{topic}/{partition}"
    fix = "start with a new SOCIALPULSE_APP_ID (it replays the input)"
    if flushed >= 0 and end < flushed + 1:
        raise StateMismatch(
            f"{where} ends at offset {end} but its state covers offsets up to {flushed}: the "
            f"input topic was recreated or truncated; {fix}")
    if flushed >= 0 and stored >= 0 and found is not None and found != stored:
        raise StateMismatch(
            f"the record at {where} offset {flushed} is not the one the state was built from: "
            f"the input topic was recreated; {fix}")
    if flushed < 0 and committed is not None and committed > 0:
        raise StateMismatch(
            f"group {group} has committed {where} up to offset {committed} but there is no "
            "state for it: the state changelog was deleted, and lifetime KPIs would restart "
            "from zero; restore it, or " + fix)
