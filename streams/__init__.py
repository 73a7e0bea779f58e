"""socialpulse stream processing: app, settings, topics, tables, KPI state and exporter."""

__version__ = "0.1.0"
