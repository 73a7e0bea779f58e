"""socialpulse benchmark harness (issue #4): ``scripts/bench`` / ``python -m bench``.

One command starts a private local Kafka broker (or uses ``--bootstrap``), preloads a topic with
simulated traffic of realistic shape and measures, each pipeline in its own process:

1. throughput, CPU per event and peak RSS of a raw aiokafka + orjson consume loop (the Python
   ceiling), a naive faust windowed-table agent (the baseline), the real socialpulse worker under
   ``at_least_once`` and ``exactly_once``, and a Quix Streams pipeline (the peer);
2. production-to-``/metrics`` latency of identifiable probe events at half the sustained rate;
3. the cost of rendering ``/metrics`` and the event-loop stall it causes;
4. the worker's memory after 24 h of event time over 1,000 accounts and 1 million users;
5. optionally (``--profile``), a py-spy profile of the worker under load.

Modules: ``sizes`` (full and tiny configurations), ``world`` (traffic), ``kafka`` (broker, topics,
offsets), ``procs`` (child processes and their resource usage), ``worker`` (a socialpulse worker
process), ``raw_consumer`` / ``naive_faust`` / ``quix_pipeline`` (the peer pipelines, run as
``python -m``), ``phases`` (the measurements), ``report`` (table and JSON), ``cli`` (the command).
"""
