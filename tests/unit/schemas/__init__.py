"""Tests of the event contract: validation and the published JSON Schema."""
