"""Unit tests of the streams package."""
