"""Typed event record and the closed set of reasons an input record can be rejected for.

``Event`` is a slotted dataclass rather than a faust ``Record``: the worker builds one per input
record on its hot path, and a plain slotted class costs a fraction of a Record's construction.
Type-specific fields are ``None`` (or their SPEC default) when the event's type does not carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "impression", "like", "save", "comment", "share", "click", "mention", "reply",
        "follow", "unfollow", "followers", "visit", "lead", "conversion", "purchase",
        "spend", "survey", "review",
    }
)


class Reason(StrEnum):
    """Why a record went to the dead-letter topic; the value is the metric label and header."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_TYPE = "unknown_type"
    BAD_EVENT_ID = "bad_event_id"
    BAD_SLUG = "bad_slug"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    OUT_OF_RANGE = "out_of_range"
    BAD_CURRENCY = "bad_currency"
    BAD_ENUM = "bad_enum"
    RESERVED_VALUE = "reserved_value"


@dataclass(slots=True, frozen=True)
class Rejected:
    """A record that breaks the contract: the reason label and a short human detail."""

    reason: Reason
    detail: str


@dataclass(slots=True)
class Event:
    """One validated interaction event (SPEC §1). ``ts`` is epoch milliseconds."""

    event_id: str
    type: str
    ts: int
    account: str
    platform: str
    campaign: str | None = None
    post_id: str | None = None
    user_id: str | None = None
    paid: bool = False
    sentiment: float | None = None
    needs_response: bool = False
    author_followers: int | None = None
    url: str | None = None
    in_reply_to: str | None = None
    resolved: bool = False
    agent: str | None = None
    team: str | None = None
    count: int | None = None
    pages: int | None = None
    bounced: bool = False
    duration_seconds: float | None = None
    goal: str | None = None
    amount: float | None = None
    currency: str | None = None
    survey: str | None = None
    score: int | None = None
    rating: int | None = None
