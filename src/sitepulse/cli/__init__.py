"""Command line: serve, demo, import, config check."""
