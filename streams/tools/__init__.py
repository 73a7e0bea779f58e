"""Tools around the worker: the ``socialpulse`` command line, broker preflight checks, the
producer, the traffic simulator and the embedded local Kafka. Never imported by ``streams.core``
or ``streams.worker``.
"""
