"""Unit tests of the demo (``streams.tools.demo``)."""
