"""The faust worker runtime: the app, its topics, batch intake and output, the flusher, the state
table hooks, the market board, the liveness watchdog and the HTTP handlers.

Importing ``streams.worker.app`` builds the app from the environment; the agents in ``agents/``
and ``streams.worker.web`` are wired in by faust's autodiscover.
"""
