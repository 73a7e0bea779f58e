"""socialpulse: live social-media KPIs from Kafka to Prometheus.

``settings`` reads the environment; ``core`` aggregates and computes the KPIs (pure); ``export``
turns them into Prometheus metrics; ``worker`` is the faust runtime; ``tools`` are the command
line, the producer, the simulator and the embedded Kafka. The README's Code map has one line per
module.
"""

__version__ = "0.1.0"
