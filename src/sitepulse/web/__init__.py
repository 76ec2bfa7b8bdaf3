"""The ASGI application: ingest and query API, metrics, health, UI."""
