"""The HTTP API (README, "Schedule, HTTP API and metrics"): app factory, routes, schemas, server.

- ``app.py``: :func:`create_app` and :class:`ApiServer` (uvicorn in a thread);
- ``routes.py``: the routes, and :class:`ApiBackend` / :class:`DaemonStatus`, what the daemon
  hands the API (how to submit a run, read the status, render the metrics): the API itself holds
  no state;
- ``schemas.py``: the response models;
- ``listen.py``: the ``HOST:PORT`` address, parsed by the settings too.

This ``__init__`` imports nothing, so that the settings can import ``listen.py`` without loading
FastAPI and uvicorn, and without the import cycle settings → api → scheduler → settings.
"""
