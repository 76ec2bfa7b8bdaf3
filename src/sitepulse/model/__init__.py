"""Shared records: plain typed data, no I/O."""
