"""``socialpulse up``: the demo of the whole product on one machine.

A local Kafka (KRaft), one worker, the traffic simulator, a Prometheus with the rules the e2e tests
use (the fast variant, on a ``1m`` window) and an Alertmanager, all on 127.0.0.1, and a live
terminal view of them (``view``) fed by the worker's ``/status`` and ``/kpis`` and Prometheus's
``/api/v1/alerts`` (``probe``). ``processes`` starts the children and stops every one of them
however ``up`` ends; ``monitoring`` renders the rules and configures the two servers; ``command``
runs it all.
"""
