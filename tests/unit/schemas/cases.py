"""The shared case table for ``schemas.validate.parse`` and ``schemas/event.schema.json``.

Each case is one raw record and its expected outcome: the exact ``Event`` (every field, so a field
that should stay unset is checked too) or the ``Reason`` it must be rejected for. The validator
tests run every case through ``parse()``; the JSON Schema sync test runs the ``schema_checkable``
ones through ``jsonschema`` as well and requires the same valid/invalid verdict. A case is not
schema-checkable when the schema cannot express the rule (record size, encoding, JSON syntax, the
clock, float vs integer ``ts``, calendar validity) and ``why_not_schema`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import orjson

from schemas.events import Event, Reason

#: Every field name of the contract (the Event attributes), for fuzzing.
FIELD_NAMES: list[str] = [f.name for f in fields(Event)]

#: The wall clock every case is parsed at: 2024-05-01T10:00:00Z.
NOW_MS = 1_714_557_600_000
#: A typical event time, a minute before NOW_MS.
TS = NOW_MS - 60_000
TOLERANCE_MS = 300_000

_DROP = object()  # a doc() field value meaning "leave this field out"


@dataclass(frozen=True)
class Case:
    id: str
    raw: bytes
    expect: Event | Reason
    why_not_schema: str | None = None

    @property
    def valid(self) -> bool:
        return isinstance(self.expect, Event)

    @property
    def schema_checkable(self) -> bool:
        return self.why_not_schema is None


def doc(type_: str, **fields: Any) -> dict[str, Any]:
    """A valid-looking ``type_`` event with the common fields, overridden or dropped by fields."""
    base: dict[str, Any] = {
        "event_id": f"evt-{type_}-1",
        "type": type_,
        "ts": TS,
        "account": "acme",
        "platform": "instagram",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not _DROP}


def event(type_: str, **fields: Any) -> Event:
    """The Event that ``doc(type_, ...)`` with the same own fields should parse to."""
    common: dict[str, Any] = {
        "event_id": f"evt-{type_}-1",
        "type": type_,
        "ts": TS,
        "account": "acme",
        "platform": "instagram",
    }
    common.update(fields)
    return Event(**common)


def _raw(record: bytes | dict[str, Any]) -> bytes:
    return record if isinstance(record, bytes) else orjson.dumps(record)


def ok(
    id: str, record: bytes | dict[str, Any], expected: Event, why_not: str | None = None
) -> Case:
    return Case(id, _raw(record), expected, why_not)


def bad(
    id: str, record: bytes | dict[str, Any], reason: Reason, why_not: str | None = None
) -> Case:
    return Case(id, _raw(record), reason, why_not)


D = _DROP
NO_SIZE = "the schema sees a decoded value, not the record's bytes"
NO_BYTES = "not decodable JSON, nothing to give the schema"
NO_CLOCK = "the schema has no clock"
NO_FLOAT_TS = "JSON Schema's integer includes integral floats (1.7e12 == 1700000000000)"
NO_CALENDAR = "the ts pattern checks field ranges, not calendar dates or the offset-applied year"

VALID: list[Case] = [
    # --- one of every type, with all of its own fields ---
    ok(
        "impression",
        doc("impression", user_id="u1", paid=True, campaign="spring-sale", post_id="p1"),
        event("impression", user_id="u1", paid=True, campaign="spring-sale", post_id="p1"),
    ),
    ok("like", doc("like", user_id="u1"), event("like", user_id="u1")),
    ok("slug_all_inside_a_word", doc("like", platform="allegro", account="all.brands"),
       event("like", platform="allegro", account="all.brands")),
    ok(
        "save",
        doc("save", user_id="u1", platform="tiktok"),
        event("save", user_id="u1", platform="tiktok"),
    ),
    ok(
        "comment",
        doc("comment", user_id="u1", sentiment=-0.5, needs_response=True, post_id="p1"),
        event("comment", user_id="u1", sentiment=-0.5, needs_response=True, post_id="p1"),
    ),
    ok(
        "share",
        doc("share", user_id="u1", author_followers=12345),
        event("share", user_id="u1", author_followers=12345),
    ),
    ok(
        "click",
        doc("click", user_id="u1", url="https://acme.example/spring?utm_source=ig"),
        event("click", user_id="u1", url="https://acme.example/spring?utm_source=ig"),
    ),
    ok(
        "mention",
        doc(
            "mention",
            platform="x",
            user_id="u1",
            sentiment=0.8,
            needs_response=True,
            author_followers=0,
        ),
        event(
            "mention",
            platform="x",
            user_id="u1",
            sentiment=0.8,
            needs_response=True,
            author_followers=0,
        ),
    ),
    ok(
        "reply",
        doc("reply", in_reply_to="evt-comment-1", resolved=True),
        event("reply", in_reply_to="evt-comment-1", resolved=True),
    ),
    ok(
        "reply_with_agent_and_team",
        doc("reply", in_reply_to="m-1", agent="agent-07", team="care-emea"),
        event("reply", in_reply_to="m-1", agent="agent-07", team="care-emea"),
    ),
    ok(
        "agent_on_a_like_is_ignored",
        doc("like", agent="Not A Slug"),
        event("like"),
    ),
    ok("follow", doc("follow", user_id="u1"), event("follow", user_id="u1")),
    ok("unfollow", doc("unfollow", user_id="u1"), event("unfollow", user_id="u1")),
    ok("followers", doc("followers", count=1_000_000), event("followers", count=1_000_000)),
    ok(
        "visit",
        doc("visit", platform="web", user_id="u1", pages=3, bounced=False, duration_seconds=42.5),
        event("visit", platform="web", user_id="u1", pages=3, bounced=False, duration_seconds=42.5),
    ),
    ok(
        "lead",
        doc("lead", user_id="u1", campaign="demo-q2"),
        event("lead", user_id="u1", campaign="demo-q2"),
    ),
    ok(
        "conversion",
        doc("conversion", goal="signup", user_id="u1"),
        event("conversion", goal="signup", user_id="u1"),
    ),
    ok(
        "purchase",
        doc("purchase", amount=49.9, currency="EUR", user_id="c1"),
        event("purchase", amount=49.9, currency="EUR", user_id="c1"),
    ),
    ok(
        "spend",
        doc("spend", amount=1200, currency="USD", campaign="spring-sale"),
        event("spend", amount=1200.0, currency="USD", campaign="spring-sale"),
    ),
    ok(
        "survey_csat",
        doc("survey", survey="csat", score=4, user_id="u1"),
        event("survey", survey="csat", score=4, user_id="u1"),
    ),
    ok("survey_nps", doc("survey", survey="nps", score=0), event("survey", survey="nps", score=0)),
    ok(
        "review",
        doc("review", rating=5, user_id="u1", sentiment=1, platform="google"),
        event("review", rating=5, user_id="u1", sentiment=1.0, platform="google"),
    ),
    # --- defaults and optional fields ---
    ok("impression_minimal", doc("impression"), event("impression", paid=False)),
    ok("comment_minimal", doc("comment"), event("comment", sentiment=None, needs_response=False)),
    ok(
        "reply_minimal",
        doc("reply", in_reply_to="m-9"),
        event("reply", in_reply_to="m-9", resolved=False),
    ),
    ok("visit_bounced", doc("visit", pages=1, bounced=True), event("visit", pages=1, bounced=True)),
    ok(
        "nulls_mean_absent",
        doc(
            "comment",
            campaign=None,
            post_id=None,
            user_id=None,
            sentiment=None,
            needs_response=None,
        ),
        event("comment"),
    ),
    ok(
        "extra_fields_ignored",
        doc("like", schema_version=1, meta={"deep": [1, {"x": None}]}, Account="IGNORED"),
        event("like"),
    ),
    ok(
        "other_types_fields_ignored",
        doc("like", amount=-5, currency="nope", count="many", rating=99, paid="yes", url=7),
        event("like"),
    ),
    ok(
        "reply_user_id_allowed",
        doc("reply", in_reply_to="m-1", user_id="agent-7"),
        event("reply", in_reply_to="m-1", user_id="agent-7"),
    ),
    # --- numbers ---
    ok("integral_float_as_int", doc("followers", count=1000.0), event("followers", count=1000)),
    ok(
        "integral_float_score",
        doc("survey", survey="nps", score=10.0),
        event("survey", survey="nps", score=10),
    ),
    ok("sentiment_int_bounds", doc("comment", sentiment=-1), event("comment", sentiment=-1.0)),
    ok("sentiment_upper_bound", doc("mention", sentiment=1.0), event("mention", sentiment=1.0)),
    ok("count_max", doc("followers", count=10**12), event("followers", count=10**12)),
    ok("count_zero", doc("followers", count=0), event("followers", count=0)),
    ok(
        "spend_zero",
        doc("spend", amount=0, currency="EUR"),
        event("spend", amount=0.0, currency="EUR"),
    ),
    ok(
        "purchase_max",
        doc("purchase", amount=10**9, currency="JPY"),
        event("purchase", amount=1e9, currency="JPY"),
    ),
    ok(
        "purchase_tiny",
        doc("purchase", amount=0.01, currency="EUR"),
        event("purchase", amount=0.01, currency="EUR"),
    ),
    ok(
        "duration_seven_days",
        doc("visit", pages=1, bounced=True, duration_seconds=604800),
        event("visit", pages=1, bounced=True, duration_seconds=604800.0),
    ),
    ok("pages_max", doc("visit", pages=10**6, bounced=False), event("visit", pages=10**6)),
    # --- strings and slugs ---
    ok("event_id_128_chars", doc("like", event_id="e" * 128), event("like", event_id="e" * 128)),
    ok("event_id_unicode", doc("like", event_id="évt-🎉"), event("like", event_id="évt-🎉")),
    ok("slug_64_chars", doc("like", account="a" * 64), event("like", account="a" * 64)),
    ok(
        "slug_punctuation",
        doc("like", account="0acme_eu.shop-2"),
        event("like", account="0acme_eu.shop-2"),
    ),
    ok("user_id_256_chars", doc("like", user_id="u" * 256), event("like", user_id="u" * 256)),
    ok("empty_url", doc("click", url=""), event("click", url="")),
    # --- time ---
    ok("ts_rfc3339_z", doc("like", ts="2024-05-01T09:59:00Z"), event("like", ts=TS)),
    ok("ts_rfc3339_offset", doc("like", ts="2024-05-01T11:59:00+02:00"), event("like", ts=TS)),
    ok(
        "ts_rfc3339_negative_offset",
        doc("like", ts="2024-05-01T04:29:00-05:30"),
        event("like", ts=TS),
    ),
    ok("ts_rfc3339_millis", doc("like", ts="2024-05-01T09:59:00.123Z"), event("like", ts=TS + 123)),
    ok(
        "ts_rfc3339_micros_truncated",
        doc("like", ts="2024-05-01T09:59:00.123999+00:00"),
        event("like", ts=TS + 123),
    ),
    ok("ts_rfc3339_space_lowercase", doc("like", ts="2024-05-01 09:59:00z"), event("like", ts=TS)),
    ok("ts_rfc3339_lowercase_t", doc("like", ts="2024-05-01t09:59:00Z"), event("like", ts=TS)),
    ok(
        "ts_leap_second",
        doc("like", ts="2016-12-31T23:59:60Z"),
        event("like", ts=1_483_228_800_000),  # == 2017-01-01T00:00:00Z
    ),
    ok(
        "ts_leap_second_with_an_offset",
        doc("like", ts="2017-01-01T01:59:60+02:00"),
        event("like", ts=1_483_228_800_000),
    ),
    ok("ts_year_2000", doc("like", ts=946_684_800_000), event("like", ts=946_684_800_000)),
    ok(
        "ts_exactly_at_tolerance",
        doc("like", ts=NOW_MS + TOLERANCE_MS),
        event("like", ts=NOW_MS + TOLERANCE_MS),
    ),
    ok(
        "ts_string_exactly_at_tolerance",
        doc("like", ts="2024-05-01T10:05:00Z"),
        event("like", ts=NOW_MS + TOLERANCE_MS),
    ),
    ok(
        "raw_whitespace",
        b' \n{"event_id":"evt-like-1","type":"like","ts":%d,\r\n\t"account":"acme",'
        b'"platform":"instagram"}\n' % TS,
        event("like"),
    ),
]

INVALID: list[Case] = [
    # --- the record as a whole ---
    bad("too_large", doc("like", padding="x" * 65536), Reason.TOO_LARGE, NO_SIZE),
    bad("not_utf8_byte", b'{"event_id": "\xff", "type": "like"}', Reason.NOT_UTF8, NO_BYTES),
    bad("not_utf8_surrogate", b'{"event_id": "\xed\xa0\x80"}', Reason.NOT_UTF8, NO_BYTES),
    bad("not_utf8_overlong", b'{"event_id": "\xc0\xaf"}', Reason.NOT_UTF8, NO_BYTES),
    bad("not_utf8_latin1", '{"account": "café"}'.encode("latin-1"), Reason.NOT_UTF8, NO_BYTES),
    bad("not_json_empty", b"", Reason.NOT_JSON, NO_BYTES),
    bad("not_json_truncated", b'{"event_id": "e1", "type": "li', Reason.NOT_JSON, NO_BYTES),
    bad("not_json_nan", b'{"x": NaN}', Reason.NOT_JSON, NO_BYTES),
    bad("not_json_infinity", b'{"sentiment": Infinity}', Reason.NOT_JSON, NO_BYTES),
    bad("not_json_overflowing_float", b'{"sentiment": 1e400}', Reason.NOT_JSON, NO_BYTES),
    bad(
        "not_json_deep_nesting",
        b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        Reason.NOT_JSON,
        NO_BYTES,
    ),
    bad("not_json_bom", b'\xef\xbb\xbf{"type": "like"}', Reason.NOT_JSON, NO_BYTES),
    bad("not_json_lone_surrogate_escape", b'{"event_id": "\\ud800"}', Reason.NOT_JSON, NO_BYTES),
    bad("not_json_single_quotes", b"{'type': 'like'}", Reason.NOT_JSON, NO_BYTES),
    bad("not_json_two_objects", b"{}{}", Reason.NOT_JSON, NO_BYTES),
    bad("not_object_array", b'[{"type": "like"}]', Reason.NOT_OBJECT),
    bad("not_object_string", b'"like"', Reason.NOT_OBJECT),
    bad("not_object_null", b"null", Reason.NOT_OBJECT),
    bad("not_object_number", b"42", Reason.NOT_OBJECT),
    # --- missing fields ---
    bad("missing_event_id", doc("like", event_id=D), Reason.MISSING_FIELD),
    bad("missing_type", doc("like", type=D), Reason.MISSING_FIELD),
    bad("missing_ts", doc("like", ts=D), Reason.MISSING_FIELD),
    bad("missing_account", doc("like", account=D), Reason.MISSING_FIELD),
    bad("missing_platform", doc("like", platform=D), Reason.MISSING_FIELD),
    bad("null_account", doc("like", account=None), Reason.MISSING_FIELD),
    bad("null_ts", doc("like", ts=None), Reason.MISSING_FIELD),
    bad("empty_object", b"{}", Reason.MISSING_FIELD),
    bad("reply_missing_in_reply_to", doc("reply", resolved=True), Reason.MISSING_FIELD),
    bad("followers_missing_count", doc("followers"), Reason.MISSING_FIELD),
    bad("visit_missing_pages", doc("visit", bounced=False), Reason.MISSING_FIELD),
    bad("visit_missing_bounced", doc("visit", pages=2), Reason.MISSING_FIELD),
    bad("visit_null_bounced", doc("visit", pages=2, bounced=None), Reason.MISSING_FIELD),
    bad("conversion_missing_goal", doc("conversion"), Reason.MISSING_FIELD),
    bad("purchase_missing_amount", doc("purchase", currency="EUR"), Reason.MISSING_FIELD),
    bad("purchase_missing_currency", doc("purchase", amount=10), Reason.MISSING_FIELD),
    bad("spend_missing_currency", doc("spend", amount=10), Reason.MISSING_FIELD),
    bad("survey_missing_survey", doc("survey", score=3), Reason.MISSING_FIELD),
    bad("survey_missing_score", doc("survey", survey="nps"), Reason.MISSING_FIELD),
    bad("review_missing_rating", doc("review", sentiment=0.2), Reason.MISSING_FIELD),
    # --- wrong JSON types ---
    bad("event_id_int", doc("like", event_id=12345), Reason.WRONG_TYPE),
    bad("type_int", doc("like", type=3), Reason.WRONG_TYPE),
    bad("type_list", doc("like", type=["like"]), Reason.WRONG_TYPE),
    bad("ts_float", doc("like", ts=float(TS)), Reason.WRONG_TYPE, NO_FLOAT_TS),
    bad("ts_fractional_float", doc("like", ts=TS + 0.5), Reason.WRONG_TYPE),
    bad("ts_bool", doc("like", ts=True), Reason.WRONG_TYPE),
    bad("ts_object", doc("like", ts={"seconds": 1}), Reason.WRONG_TYPE),
    bad(
        "ts_huge_int",  # beyond 64 bits orjson yields a float
        b'{"event_id":"e","type":"like","ts":123456789012345678901234567890,"account":"a","platform":"x"}',
        Reason.WRONG_TYPE,
        NO_FLOAT_TS,
    ),
    bad("account_int", doc("like", account=7), Reason.WRONG_TYPE),
    bad("platform_bool", doc("like", platform=False), Reason.WRONG_TYPE),
    bad("campaign_list", doc("like", campaign=["a"]), Reason.WRONG_TYPE),
    bad("post_id_int", doc("like", post_id=17895695668004550), Reason.WRONG_TYPE),
    bad("user_id_object", doc("like", user_id={"id": 1}), Reason.WRONG_TYPE),
    bad("bool_as_count", doc("followers", count=True), Reason.WRONG_TYPE),
    bad("bool_as_pages", doc("visit", pages=True, bounced=False), Reason.WRONG_TYPE),
    bad("bool_as_sentiment", doc("comment", sentiment=False), Reason.WRONG_TYPE),
    bad("bool_as_amount", doc("purchase", amount=True, currency="EUR"), Reason.WRONG_TYPE),
    bad("bool_as_rating", doc("review", rating=True), Reason.WRONG_TYPE),
    bad("string_as_count", doc("followers", count="1000"), Reason.WRONG_TYPE),
    bad("fractional_count", doc("followers", count=10.5), Reason.WRONG_TYPE),
    bad("fractional_score", doc("survey", survey="csat", score=4.5), Reason.WRONG_TYPE),
    bad("string_sentiment", doc("comment", sentiment="positive"), Reason.WRONG_TYPE),
    bad("string_author_followers", doc("share", author_followers="12k"), Reason.WRONG_TYPE),
    bad(
        "string_duration",
        doc("visit", pages=1, bounced=True, duration_seconds="42"),
        Reason.WRONG_TYPE,
    ),
    bad("int_as_paid", doc("impression", paid=1), Reason.WRONG_TYPE),
    bad("string_needs_response", doc("mention", needs_response="true"), Reason.WRONG_TYPE),
    bad("int_resolved", doc("reply", in_reply_to="m-1", resolved=0), Reason.WRONG_TYPE),
    bad("string_bounced", doc("visit", pages=1, bounced="false"), Reason.WRONG_TYPE),
    bad("in_reply_to_int", doc("reply", in_reply_to=42), Reason.WRONG_TYPE),
    bad("url_int", doc("click", url=7), Reason.WRONG_TYPE),
    bad("goal_int", doc("conversion", goal=1), Reason.WRONG_TYPE),
    bad("currency_int", doc("spend", amount=1, currency=978), Reason.WRONG_TYPE),
    bad("survey_int", doc("survey", survey=1, score=1), Reason.WRONG_TYPE),
    # --- type ---
    bad("unknown_type", doc("retweet"), Reason.UNKNOWN_TYPE),
    bad("unknown_type_case", doc("Like"), Reason.UNKNOWN_TYPE),
    bad("unknown_type_empty", doc(""), Reason.UNKNOWN_TYPE),
    # --- event ids ---
    bad("event_id_empty", doc("like", event_id=""), Reason.BAD_EVENT_ID),
    bad("event_id_129_chars", doc("like", event_id="e" * 129), Reason.BAD_EVENT_ID),
    bad("in_reply_to_empty", doc("reply", in_reply_to=""), Reason.BAD_EVENT_ID),
    bad("in_reply_to_too_long", doc("reply", in_reply_to="m" * 129), Reason.BAD_EVENT_ID),
    # --- slugs ---
    bad("slug_upper_case", doc("like", account="Acme"), Reason.BAD_SLUG),
    bad("slug_trailing_newline", doc("like", account="acme\n"), Reason.BAD_SLUG),
    bad("slug_unicode", doc("like", account="acmé"), Reason.BAD_SLUG),
    bad("slug_fullwidth_digit", doc("like", account="acme\uff11"), Reason.BAD_SLUG),
    bad("slug_leading_dash", doc("like", account="-acme"), Reason.BAD_SLUG),
    bad("slug_space", doc("like", platform="face book"), Reason.BAD_SLUG),
    bad("slug_empty", doc("like", platform=""), Reason.BAD_SLUG),
    bad("slug_65_chars", doc("like", account="a" * 65), Reason.BAD_SLUG),
    bad("slug_prometheus_injection", doc("like", account='acme",x="1'), Reason.BAD_SLUG),
    bad("campaign_bad_slug", doc("like", campaign="Spring Sale"), Reason.BAD_SLUG),
    bad("goal_bad_slug", doc("conversion", goal="Sign Up"), Reason.BAD_SLUG),
    bad("account_reserved_all", doc("like", account="all"), Reason.RESERVED_VALUE),
    bad("platform_reserved_all", doc("like", platform="all"), Reason.RESERVED_VALUE),
    bad("campaign_reserved_all", doc("like", campaign="all"), Reason.RESERVED_VALUE),
    bad("goal_reserved_all", doc("conversion", goal="all"), Reason.RESERVED_VALUE),
    bad("agent_reserved_all", doc("reply", in_reply_to="m-1", agent="all"),
        Reason.RESERVED_VALUE),
    bad("agent_bad_slug", doc("reply", in_reply_to="m-1", agent="Jane Doe"), Reason.BAD_SLUG),
    bad("team_reserved_other", doc("reply", in_reply_to="m-1", team="_other"), Reason.BAD_SLUG),
    bad("team_wrong_type", doc("reply", in_reply_to="m-1", team=7), Reason.WRONG_TYPE),
    # --- timestamps ---
    bad("ts_naive", doc("like", ts="2024-05-01T09:59:00"), Reason.BAD_TIMESTAMP),
    bad("ts_second_60_not_a_leap_second", doc("like", ts="2024-05-01T12:34:60Z"),
        Reason.BAD_TIMESTAMP, "JSON Schema's date-time format accepts any second 60"),

    bad("ts_date_only", doc("like", ts="2024-05-01"), Reason.BAD_TIMESTAMP),
    bad("ts_iso_basic", doc("like", ts="20240501T095900Z"), Reason.BAD_TIMESTAMP),
    bad("ts_comma_fraction", doc("like", ts="2024-05-01T09:59:00,5Z"), Reason.BAD_TIMESTAMP),
    bad("ts_no_seconds", doc("like", ts="2024-05-01T09:59Z"), Reason.BAD_TIMESTAMP),
    bad(
        "ts_offset_without_colon", doc("like", ts="2024-05-01T09:59:00+0200"), Reason.BAD_TIMESTAMP
    ),
    bad("ts_trailing_newline", doc("like", ts="2024-05-01T09:59:00Z\n"), Reason.BAD_TIMESTAMP),
    bad("ts_unicode_digits", doc("like", ts="٢٠٢٤-05-01T09:59:00Z"), Reason.BAD_TIMESTAMP),
    bad("ts_month_13", doc("like", ts="2024-13-01T09:59:00Z"), Reason.BAD_TIMESTAMP),
    bad("ts_hour_24", doc("like", ts="2024-05-01T24:00:00Z"), Reason.BAD_TIMESTAMP),
    bad("ts_offset_24h", doc("like", ts="2024-05-01T09:59:00+24:00"), Reason.BAD_TIMESTAMP),
    bad("ts_feb_30", doc("like", ts="2024-02-30T09:59:00Z"), Reason.BAD_TIMESTAMP, NO_CALENDAR),
    bad("ts_text", doc("like", ts="yesterday"), Reason.BAD_TIMESTAMP),
    bad("ts_numeric_string", doc("like", ts=str(TS)), Reason.BAD_TIMESTAMP),
    bad("ts_seconds_not_ms", doc("like", ts=TS // 1000), Reason.BAD_TIMESTAMP),
    bad("ts_negative", doc("like", ts=-1), Reason.BAD_TIMESTAMP),
    bad("ts_before_2000", doc("like", ts=946_684_799_999), Reason.BAD_TIMESTAMP),
    bad("ts_string_before_2000", doc("like", ts="1999-12-31T23:59:59Z"), Reason.BAD_TIMESTAMP),
    bad(
        "ts_string_before_2000_by_offset",
        doc("like", ts="2000-01-01T00:30:00+01:00"),
        Reason.BAD_TIMESTAMP,
        NO_CALENDAR,
    ),
    # --- future ---
    bad(
        "ts_just_past_tolerance",
        doc("like", ts=NOW_MS + TOLERANCE_MS + 1),
        Reason.FUTURE_TIMESTAMP,
        NO_CLOCK,
    ),
    bad("ts_far_future", doc("like", ts="2999-01-01T00:00:00Z"), Reason.FUTURE_TIMESTAMP, NO_CLOCK),
    bad("ts_u64_max", doc("like", ts=2**64 - 1), Reason.FUTURE_TIMESTAMP, NO_CLOCK),
    # --- ranges ---
    bad("sentiment_above_1", doc("comment", sentiment=1.01), Reason.OUT_OF_RANGE),
    bad("sentiment_below_minus_1", doc("mention", sentiment=-2), Reason.OUT_OF_RANGE),
    bad("review_sentiment_range", doc("review", rating=3, sentiment=5), Reason.OUT_OF_RANGE),
    bad("author_followers_negative", doc("share", author_followers=-1), Reason.OUT_OF_RANGE),
    bad("author_followers_huge", doc("mention", author_followers=10**12 + 1), Reason.OUT_OF_RANGE),
    bad("count_negative", doc("followers", count=-5), Reason.OUT_OF_RANGE),
    bad("count_above_max", doc("followers", count=10**12 + 1), Reason.OUT_OF_RANGE),
    bad("count_u64_max", doc("followers", count=2**64 - 1), Reason.OUT_OF_RANGE),
    bad(
        "count_huge_int",  # beyond 64 bits orjson yields the float 1.2e29: integral, out of range
        b'{"event_id":"e","type":"followers","ts":%d,"account":"a","platform":"x",'
        b'"count":123456789012345678901234567890}' % TS,
        Reason.OUT_OF_RANGE,
    ),
    bad("count_huge_float", doc("followers", count=1e300), Reason.OUT_OF_RANGE),
    bad("pages_zero", doc("visit", pages=0, bounced=True), Reason.OUT_OF_RANGE),
    bad("pages_above_max", doc("visit", pages=10**6 + 1, bounced=False), Reason.OUT_OF_RANGE),
    bad(
        "duration_negative",
        doc("visit", pages=1, bounced=True, duration_seconds=-0.1),
        Reason.OUT_OF_RANGE,
    ),
    bad(
        "duration_above_7_days",
        doc("visit", pages=1, bounced=True, duration_seconds=604800.5),
        Reason.OUT_OF_RANGE,
    ),
    bad("purchase_amount_zero", doc("purchase", amount=0, currency="EUR"), Reason.OUT_OF_RANGE),
    bad(
        "purchase_amount_negative_zero",
        doc("purchase", amount=-0.0, currency="EUR"),
        Reason.OUT_OF_RANGE,
    ),
    bad(
        "purchase_amount_negative", doc("purchase", amount=-10, currency="EUR"), Reason.OUT_OF_RANGE
    ),
    bad(
        "purchase_amount_huge", doc("purchase", amount=1e9 + 1, currency="EUR"), Reason.OUT_OF_RANGE
    ),
    bad("spend_amount_negative", doc("spend", amount=-0.01, currency="EUR"), Reason.OUT_OF_RANGE),
    bad("csat_zero", doc("survey", survey="csat", score=0), Reason.OUT_OF_RANGE),
    bad("csat_six", doc("survey", survey="csat", score=6), Reason.OUT_OF_RANGE),
    bad("nps_eleven", doc("survey", survey="nps", score=11), Reason.OUT_OF_RANGE),
    bad("nps_negative", doc("survey", survey="nps", score=-1), Reason.OUT_OF_RANGE),
    bad("rating_zero", doc("review", rating=0), Reason.OUT_OF_RANGE),
    bad("rating_six", doc("review", rating=6), Reason.OUT_OF_RANGE),
    bad("user_id_empty", doc("like", user_id=""), Reason.OUT_OF_RANGE),
    bad("post_id_257_chars", doc("like", post_id="p" * 257), Reason.OUT_OF_RANGE),
    bad("url_too_long", doc("click", url="https://a.example/" + "x" * 2031), Reason.OUT_OF_RANGE),
    # --- currency and enums ---
    bad("currency_lower_case", doc("purchase", amount=1, currency="eur"), Reason.BAD_CURRENCY),
    bad("currency_four_letters", doc("spend", amount=1, currency="EURO"), Reason.BAD_CURRENCY),
    bad("currency_symbol", doc("spend", amount=1, currency="€"), Reason.BAD_CURRENCY),
    bad(
        "currency_trailing_newline",
        doc("purchase", amount=1, currency="EUR\n"),
        Reason.BAD_CURRENCY,
    ),
    bad("survey_unknown", doc("survey", survey="ces", score=3), Reason.BAD_ENUM),
    bad("survey_upper_case", doc("survey", survey="NPS", score=3), Reason.BAD_ENUM),
]

ALL: list[Case] = VALID + INVALID

# Every reason must be exercised by at least one case; checked again by a test so that the failure
# names the missing reasons, but also here so that a broken table cannot be imported silently.
assert {c.expect for c in INVALID} == set(Reason), set(Reason) - {c.expect for c in INVALID}
assert len({c.id for c in ALL}) == len(ALL), "duplicate case ids"
