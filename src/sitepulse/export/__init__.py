"""Exposition for Prometheus and generators of configurations for other tools."""
