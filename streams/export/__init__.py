"""Prometheus exposition: the pipeline's health instruments, the KPI Collector, the text renderer.

The KPI families themselves are declared in ``streams.core.catalogue`` (pure data the core names
its series by); this package turns them and the health counters into what a scrape reads.
"""
