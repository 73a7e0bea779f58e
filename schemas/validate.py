"""Validate one raw Kafka record against the event contract (SPEC §1) and the bad-input rules (§6).

``parse()`` turns the record's bytes into an :class:`~schemas.events.Event` or a
:class:`~schemas.events.Rejected` carrying the :class:`~schemas.events.Reason` that becomes the
dead-letter header and the ``socialpulse_events_rejected_total{reason=...}`` label. It never raises
for any input: a worker must not stop on a malformed record.

It runs once per consumed record, so it is written for speed: one ``orjson.loads``, exact-type
checks (``type(v) is int`` also keeps ``bool`` out, since ``bool`` is a subclass of ``int``),
precompiled regexes, and a private exception that is raised only on the (rare) rejection path;
Python's ``try`` costs nothing while nothing is raised.

Interpretations of the contract that producers can observe (also encoded in ``event.schema.json``):

* A field whose value is JSON ``null`` is treated as absent: optional fields take their default,
  required ones are rejected as ``missing_field``. Producers that serialise ``None`` as ``null`` are
  common, and rejecting their events would lose them for no gain.
* Integer fields (``count``, ``pages``, ``author_followers``, ``score``, ``rating``) also accept a
  float with an integral value (``5.0`` -> ``5``), which is what JSON Schema's ``integer`` means.
  ``ts`` does not: an integer ``ts`` must be a JSON integer, because a float there almost always is
  a seconds timestamp (``time.time()``) or a JavaScript float that lost precision.
* A non-string ``event_id`` or ``in_reply_to`` is ``wrong_type``; a string of the wrong length is
  ``bad_event_id``. Every non-string where a string is expected is ``wrong_type``.
* ``ts`` strings follow RFC 3339: ``YYYY-MM-DD``, a ``T``/``t`` or space separator, ``hh:mm:ss``,
  optional fraction (truncated to milliseconds), and ``Z``/``z`` or ``+hh:mm``/``-hh:mm``. A leap
  second (``:60``) is read as second 0 of the next minute, as POSIX time does. Times
  before 2000-01-01T00:00:00Z are ``bad_timestamp`` (a seconds value sent as milliseconds lands
  there, in 1970).
* Lengths count Unicode code points (like JSON Schema's ``maxLength``). ``url`` may be empty; the
  other strings need at least one character.
* Checks run in a fixed order (common fields, then the type's own fields) and the first failure is
  the reason, so a record with several faults always gets the same one.
* ``currency`` is checked for shape (three upper-case letters), not against the ISO 4217 list.
* Fields of other types are ignored (an ``amount`` on a ``like`` is neither checked nor kept);
  ``user_id`` and ``post_id`` are checked on every type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas.events import EVENT_TYPES, Event, Reason, Rejected

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE_MS",
    "DEFAULT_MAX_BYTES",
    "MIN_TS_MS",
    "parse",
    "reject_reasons",
]

DEFAULT_MAX_BYTES: Final = 65536
DEFAULT_FUTURE_TOLERANCE_MS: Final = 300_000
#: 2000-01-01T00:00:00Z in epoch milliseconds: the earliest accepted event time.
MIN_TS_MS: Final = 946_684_800_000

MAX_ID_CHARS: Final = 128
MAX_TEXT_CHARS: Final = 256
MAX_URL_CHARS: Final = 2048
MAX_COUNT: Final = 10**12
MAX_PAGES: Final = 10**6
MAX_DURATION_SECONDS: Final = 7 * 24 * 3600
MAX_AMOUNT: Final = 10**9
SCORE_RANGES: Final[dict[str, tuple[int, int]]] = {"csat": (1, 5), "nps": (0, 10)}

# fullmatch, not match + `$`: `$` also matches before a trailing "\n", so "acme\n" would pass and
# then become a Prometheus label value. [a-z0-9] is ASCII-only (no re.IGNORECASE, no \w).
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Labels the totals (platform="all", goal="all"): never a value from event data.
RESERVED_SLUG: Final = "all"
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
# The shape of an RFC 3339 date-time with a mandatory offset. [0-9], not \d: \d matches any Unicode
# digit. Field ranges (month 13, Feb 30, +24:00) are left to datetime.fromisoformat, which rejects
# them; this regex exists because fromisoformat alone also accepts naive times, dates without a
# time, ISO basic format ("20240101T000000Z") and comma fractions, none of which is RFC 3339.
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# How much user input a detail may quote (the brief caps it at 80 characters; a detail also carries
# our own words, so quotes stay well below that).
_QUOTE_CHARS: Final = 40


class _Invalid(Exception):
    """Raised by the field checkers and turned into a ``Rejected`` by :func:`parse`."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def reject_reasons() -> list[str]:
    """Every rejection reason label, e.g. to pre-create the rejected counter's children at zero."""
    return [reason.value for reason in Reason]


def parse(
    raw: bytes,
    *,
    now_ms: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    future_tolerance_ms: int = DEFAULT_FUTURE_TOLERANCE_MS,
) -> Event | Rejected:
    """Validate one record; return the typed event or the reason it breaks the contract.

    ``now_ms`` is the wall clock in epoch milliseconds (passed in so tests and replays are
    deterministic); an event whose ``ts`` is more than ``future_tolerance_ms`` after it is rejected.
    """
    # Size first: it is free and keeps an oversized record from ever reaching the decoder.
    if len(raw) > max_bytes:
        return Rejected(Reason.TOO_LARGE, f"record is {len(raw)} bytes, limit is {max_bytes}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _decode_error(raw, exc)
    if type(obj) is not dict:
        return Rejected(Reason.NOT_OBJECT, f"top-level value is {_kind(obj)}, not an object")
    try:
        return _event(obj, now_ms, future_tolerance_ms)
    except _Invalid as bad:
        return Rejected(bad.reason, bad.detail)


def _decode_error(raw: bytes, exc: orjson.JSONDecodeError) -> Rejected:
    # orjson reports bad UTF-8 with a message that does not always say so ("surrogates not allowed"
    # for a plain 0xff byte), so ask the strict codec instead; this runs only for broken records.
    try:
        str(raw, "utf-8")
    except UnicodeDecodeError as err:
        return Rejected(Reason.NOT_UTF8, f"invalid UTF-8 at byte {err.start}")
    # orjson's messages name a position, never the input; cap them anyway.
    return Rejected(Reason.NOT_JSON, f"invalid JSON: {str(exc)[:100]}")


def _event(obj: dict[str, Any], now_ms: int, future_tolerance_ms: int) -> Event:
    get = obj.get
    event_id = _id_string(get("event_id"), "event_id")
    etype = get("type")
    if etype is None:
        raise _missing("type")
    if type(etype) is not str:
        raise _wrong_type("type", etype, "a string")
    if etype not in EVENT_TYPES:
        raise _Invalid(Reason.UNKNOWN_TYPE, f"field 'type': unknown event type {_quote(etype)}")
    ts = _timestamp(get("ts"), now_ms, future_tolerance_ms)
    account = _slug(get("account"), "account")
    platform = _slug(get("platform"), "platform")
    campaign = get("campaign")
    if campaign is not None:
        campaign = _slug(campaign, "campaign")
    post_id = _opt_text(get("post_id"), "post_id", 1, MAX_TEXT_CHARS)
    user_id = _opt_text(get("user_id"), "user_id", 1, MAX_TEXT_CHARS)
    event = Event(event_id, etype, ts, account, platform, campaign, post_id, user_id)
    own = _OWN_FIELDS.get(etype)
    if own is not None:
        own(obj, event)
    return event


# --- type-specific fields: each sets only the fields its type carries (SPEC §1, second table) ---


def _own_impression(obj: dict[str, Any], ev: Event) -> None:
    ev.paid = _opt_bool(obj.get("paid"), "paid")


def _own_comment(obj: dict[str, Any], ev: Event) -> None:
    ev.sentiment = _opt_number(obj.get("sentiment"), "sentiment", -1, 1)
    ev.needs_response = _opt_bool(obj.get("needs_response"), "needs_response")


def _own_share(obj: dict[str, Any], ev: Event) -> None:
    ev.author_followers = _opt_int(obj.get("author_followers"), "author_followers", 0, MAX_COUNT)


def _own_click(obj: dict[str, Any], ev: Event) -> None:
    ev.url = _opt_text(obj.get("url"), "url", 0, MAX_URL_CHARS)


def _own_mention(obj: dict[str, Any], ev: Event) -> None:
    _own_comment(obj, ev)
    _own_share(obj, ev)


def _own_reply(obj: dict[str, Any], ev: Event) -> None:
    ev.in_reply_to = _id_string(obj.get("in_reply_to"), "in_reply_to")
    ev.resolved = _opt_bool(obj.get("resolved"), "resolved")
    # The care staff who answered: pseudonymous slugs (labels, so never a person's name).
    agent = obj.get("agent")
    if agent is not None:
        ev.agent = _slug(agent, "agent")
    team = obj.get("team")
    if team is not None:
        ev.team = _slug(team, "team")


def _own_followers(obj: dict[str, Any], ev: Event) -> None:
    ev.count = _int(_required(obj, "count"), "count", 0, MAX_COUNT)


def _own_visit(obj: dict[str, Any], ev: Event) -> None:
    ev.pages = _int(_required(obj, "pages"), "pages", 1, MAX_PAGES)
    bounced = _required(obj, "bounced")
    if type(bounced) is not bool:
        raise _wrong_type("bounced", bounced, "a boolean")
    ev.bounced = bounced
    duration = obj.get("duration_seconds")
    if duration is not None:
        ev.duration_seconds = _number(duration, "duration_seconds", 0, MAX_DURATION_SECONDS)


def _own_conversion(obj: dict[str, Any], ev: Event) -> None:
    ev.goal = _slug(obj.get("goal"), "goal")


def _own_purchase(obj: dict[str, Any], ev: Event) -> None:
    amount = _number(_required(obj, "amount"), "amount", 0, MAX_AMOUNT)
    if amount == 0:  # revenue must be positive; a zero-value order is not an order
        raise _Invalid(Reason.OUT_OF_RANGE, "field 'amount': must be > 0 for a purchase")
    ev.amount = amount
    ev.currency = _currency(obj.get("currency"))


def _own_spend(obj: dict[str, Any], ev: Event) -> None:
    ev.amount = _number(_required(obj, "amount"), "amount", 0, MAX_AMOUNT)
    ev.currency = _currency(obj.get("currency"))


def _own_survey(obj: dict[str, Any], ev: Event) -> None:
    survey = _required(obj, "survey")
    if type(survey) is not str:
        raise _wrong_type("survey", survey, "a string")
    bounds = SCORE_RANGES.get(survey)
    if bounds is None:
        raise _Invalid(
            Reason.BAD_ENUM, f"field 'survey': {_quote(survey)} is not one of 'csat', 'nps'"
        )
    ev.survey = survey
    ev.score = _int(_required(obj, "score"), "score", *bounds)


def _own_review(obj: dict[str, Any], ev: Event) -> None:
    ev.rating = _int(_required(obj, "rating"), "rating", 1, 5)
    ev.sentiment = _opt_number(obj.get("sentiment"), "sentiment", -1, 1)


# like, save, follow, unfollow and lead carry only the common fields (user_id is common here).
_OWN_FIELDS: Final[dict[str, Callable[[dict[str, Any], Event], None]]] = {
    "impression": _own_impression,
    "comment": _own_comment,
    "share": _own_share,
    "click": _own_click,
    "mention": _own_mention,
    "reply": _own_reply,
    "followers": _own_followers,
    "visit": _own_visit,
    "conversion": _own_conversion,
    "purchase": _own_purchase,
    "spend": _own_spend,
    "survey": _own_survey,
    "review": _own_review,
}
assert _OWN_FIELDS.keys() <= EVENT_TYPES


# --- field checkers: return the clean value or raise _Invalid ---


def _required(obj: dict[str, Any], name: str) -> Any:
    value = obj.get(name)
    if value is None:
        raise _missing(name)
    return value


def _id_string(value: Any, name: str) -> str:
    if value is None:
        raise _missing(name)
    if type(value) is not str:
        raise _wrong_type(name, value, "a string")
    if not 0 < len(value) <= MAX_ID_CHARS:
        raise _Invalid(
            Reason.BAD_EVENT_ID, f"field {name!r}: length {len(value)} is not 1-{MAX_ID_CHARS}"
        )
    return value


def _slug(value: Any, name: str) -> str:
    if value is None:
        raise _missing(name)
    if type(value) is not str:
        raise _wrong_type(name, value, "a string")
    if _SLUG.fullmatch(value) is None:
        raise _Invalid(
            Reason.BAD_SLUG, f"field {name!r}: {_quote(value)} is not a slug [a-z0-9][a-z0-9_.-]*"
        )
    if value == RESERVED_SLUG:
        # Every slug becomes a label, and "all" labels the totals (SPEC §1, reserved values).
        raise _Invalid(Reason.RESERVED_VALUE,
                       f"field {name!r}: 'all' is reserved: it labels the totals")
    return value


def _opt_text(value: Any, name: str, min_chars: int, max_chars: int) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _wrong_type(name, value, "a string")
    if not min_chars <= len(value) <= max_chars:
        raise _Invalid(
            Reason.OUT_OF_RANGE,
            f"field {name!r}: length {len(value)} is not {min_chars}-{max_chars}",
        )
    return value


def _opt_bool(value: Any, name: str) -> bool:
    # Every optional boolean of the contract defaults to false.
    if value is None:
        return False
    if type(value) is not bool:
        raise _wrong_type(name, value, "a boolean")
    return value


def _number(value: Any, name: str, low: int, high: int) -> float:
    # Exact types: bool is a subclass of int and must not count as 0 or 1.
    vtype = type(value)
    if vtype is not float and vtype is not int:
        raise _wrong_type(name, value, "a number")
    # A chained comparison that is false for NaN too (orjson refuses NaN and overflowing literals
    # today; this keeps us safe if a decoder option ever lets them through). Ints are compared
    # before float() so an enormous int cannot overflow the conversion.
    if not low <= value <= high:
        raise _out_of_range(name, value, low, high)
    return float(value)


def _opt_number(value: Any, name: str, low: int, high: int) -> float | None:
    return None if value is None else _number(value, name, low, high)


def _int(value: Any, name: str, low: int, high: int) -> int:
    vtype = type(value)
    if vtype is int:
        if not low <= value <= high:
            raise _out_of_range(name, value, low, high)
        return int(value)
    if vtype is float:
        # Range before integrality, so NaN and infinities are out_of_range like everywhere else;
        # an integral float is accepted as the int it equals (JSON Schema's `integer` does too).
        if not low <= value <= high:
            raise _out_of_range(name, value, low, high)
        if value.is_integer():
            return int(value)
        raise _wrong_type(name, value, "an integer")
    raise _wrong_type(name, value, "an integer")


def _opt_int(value: Any, name: str, low: int, high: int) -> int | None:
    return None if value is None else _int(value, name, low, high)


def _currency(value: Any) -> str:
    if value is None:
        raise _missing("currency")
    if type(value) is not str:
        raise _wrong_type("currency", value, "a string")
    if _CURRENCY.fullmatch(value) is None:
        raise _Invalid(
            Reason.BAD_CURRENCY,
            f"field 'currency': {_quote(value)} is not an ISO 4217 code like 'EUR'",
        )
    return value


def _timestamp(value: Any, now_ms: int, future_tolerance_ms: int) -> int:
    vtype = type(value)
    if vtype is int:
        ts: int = value
    elif vtype is str:
        ts = _rfc3339_ms(value)
    elif value is None:
        raise _missing("ts")
    else:
        raise _wrong_type("ts", value, "integer epoch milliseconds or an RFC 3339 string")
    if ts < MIN_TS_MS:
        raise _Invalid(
            Reason.BAD_TIMESTAMP,
            f"field 'ts': {ts} ms is before 2000-01-01 (seconds sent as milliseconds?)",
        )
    if ts > now_ms + future_tolerance_ms:
        raise _Invalid(
            Reason.FUTURE_TIMESTAMP,
            f"field 'ts': {ts - now_ms} ms in the future, tolerance {future_tolerance_ms} ms",
        )
    return ts


def _rfc3339_ms(text: str) -> int:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise _Invalid(
            Reason.BAD_TIMESTAMP,
            f"field 'ts': {_quote(text)} is not RFC 3339 with an offset "
            "(like 2024-05-01T12:00:00Z or 2024-05-01T14:00:00+02:00)",
        )
    leap = match.group(1) == "60"
    if leap:
        # datetime has no second 60: read 23:59:60 as 23:59:59 plus one second.
        start = match.start(1)
        text = f"{text[:start]}59{text[start + 2 :]}"
    try:
        # upper(): fromisoformat rejects the lower-case 't' and 'z' that RFC 3339 allows.
        delta = datetime.fromisoformat(text.upper()) - _EPOCH
    except (ValueError, OverflowError):
        raise _Invalid(
            Reason.BAD_TIMESTAMP, f"field 'ts': {_quote(text)} is not a valid date and time"
        ) from None
    # Exact integer milliseconds (float timestamp() could be off by one); a normalised timedelta has
    # 0 <= seconds < 86400 and 0 <= microseconds < 10**6, so this floors like `// 1 ms`, faster.
    ms = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    if leap:
        # A leap second is the last second of a UTC day (23:59:60Z, or its local equivalent).
        if ms // 1000 % 86_400 != 86_399:
            raise _Invalid(
                Reason.BAD_TIMESTAMP,
                f"field 'ts': {_quote(match.string)} has second 60 outside 23:59:60 UTC",
            )
        return ms + 1000
    return ms


# --- details: short, and quoting at most _QUOTE_CHARS characters of user input ---


def _missing(name: str) -> _Invalid:
    return _Invalid(Reason.MISSING_FIELD, f"field {name!r}: missing or null")


def _wrong_type(name: str, value: Any, expected: str) -> _Invalid:
    return _Invalid(Reason.WRONG_TYPE, f"field {name!r}: {_kind(value)}, expected {expected}")


def _out_of_range(name: str, value: Any, low: int, high: int) -> _Invalid:
    return _Invalid(
        Reason.OUT_OF_RANGE, f"field {name!r}: {_quote(value)} is not in [{low}, {high}]"
    )


def _kind(value: Any) -> str:
    """The JSON type of a decoded value, as an article and a noun."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is int:
        return "an integer"
    if type(value) is float:
        return "a number"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    return "an object"


def _quote(value: Any) -> str:
    # Never repr() a container: it may be 1000 levels deep and 64 KiB long. Cut the input before
    # repr() (cheap) and the repr after it (escapes like \x00 grow it fourfold).
    if type(value) is str:
        value = value[:_QUOTE_CHARS]
    elif type(value) not in (int, float, bool):
        return _kind(value)
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "..."
