"""Local disk stores: what grows with events lives here instead of in RAM (RocksDB)."""
