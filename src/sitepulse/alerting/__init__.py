"""Alerting and notification: what sitepulse tells other systems, and how it gets there."""
