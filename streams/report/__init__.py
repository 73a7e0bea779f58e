"""``socialpulse report``: the history Prometheus holds, turned into an HTML page and a PDF.

``model`` is the report as data, ``prometheus`` the HTTP API client, ``collect`` the queries that
fill the model, ``charts`` (matplotlib), ``html`` and ``pdf`` (headless Chromium) the output.
Nothing here is imported by the core or the worker.
"""
