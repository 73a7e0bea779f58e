"""The pure aggregation core: events in, KPI series out, no Kafka, HTTP or Prometheus client.

Nothing here imports faust, aiokafka, aiohttp or prometheus_client
(``tests/unit/streams/core/test_purity.py`` fails if anything does): the unit tests and the oracle
comparisons drive it directly, with the clock as an argument.
"""
