"""What counts as a positive or a negative sentiment, a satisfied CSAT answer, an NPS promoter or
detractor (SPEC §3): the one home of the thresholds that the windowed counts
(``streams.core.rules``) and the lifetime totals (``streams.core.totals``) share."""

from __future__ import annotations

POSITIVE_SENTIMENT = 0.25  # above: positive
NEGATIVE_SENTIMENT = -0.25  # below: negative
CSAT_SATISFIED = 4  # a CSAT answer (1-5) of at least this is satisfied
NPS_PROMOTER = 9  # an NPS answer (0-10) of at least this is a promoter ...
NPS_DETRACTOR = 6  # ... of at most this a detractor


def polarity(sentiment: float) -> int:
    """1 for a positive sentiment, -1 for a negative one, 0 in between."""
    if sentiment > POSITIVE_SENTIMENT:
        return 1
    if sentiment < NEGATIVE_SENTIMENT:
        return -1
    return 0


def nps_class(score: float) -> int:
    """1 for a promoter, -1 for a detractor, 0 for a passive answer."""
    if score >= NPS_PROMOTER:
        return 1
    if score <= NPS_DETRACTOR:
        return -1
    return 0
