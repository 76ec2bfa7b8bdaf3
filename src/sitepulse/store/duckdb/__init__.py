"""The embedded DuckDB backend (default)."""

from sitepulse.store.duckdb.backend import DuckDBStore

__all__ = ["DuckDBStore"]
