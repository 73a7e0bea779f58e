"""The socialpulse event contract (SPEC §1): typed records, validation and rejection reasons."""

from schemas.events import EVENT_TYPES, Event, Reason, Rejected

__all__ = ["EVENT_TYPES", "Event", "Reason", "Rejected"]
