"""Reserved label values (SPEC §1): what an overflowed or aggregated series is labelled with.

Slugs in event data start with ``[a-z0-9]``, so ``_other`` never collides with a real value;
``all`` is refused as a platform or goal by the validator for the same reason.
"""

from __future__ import annotations

RESPONSE_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
OTHER_ACCOUNT = "_other"
OTHER_CAMPAIGN = "_other"
# Not a slug (slugs start with [a-z0-9]), so it never collides with a real value.
OTHER_LABEL = "_other"
#: The ``kind`` values of ``socialpulse_events_overflow_total``: each capped label dimension.
OVERFLOW_KINDS: tuple[str, ...] = (
    "account", "campaign", "platform", "goal", "currency", "agent", "team")
ALL_PLATFORMS = "all"
ALL_GOALS = "all"

# The buckets of "_other" are kept per market of the accounts they stand for (their mentions
# count in that market's share of voice), under this internal account name; exported as "_other".
_OTHER_PREFIX = OTHER_ACCOUNT + "@"


def other_of_market(market: str) -> str:
    """The internal account of the overflowed accounts of ``market``."""
    return _OTHER_PREFIX + market


def exported_account(account: str) -> str:
    """The ``account`` label of an internal account (``_other@coffee`` -> ``_other``)."""
    return OTHER_ACCOUNT if account.startswith(_OTHER_PREFIX) else account


def market_of_other(account: str) -> str | None:
    """The market of an internal ``_other`` account; None for any other account."""
    return account[len(_OTHER_PREFIX):] if account.startswith(_OTHER_PREFIX) else None
