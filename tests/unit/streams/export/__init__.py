"""export tests."""
