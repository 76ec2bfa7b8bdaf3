"""Collection: ingest endpoints' logic, the browser collector, log and file sources."""
