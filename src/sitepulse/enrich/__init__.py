"""Enrichment: user agent, bots, geo, channel, privacy, sessions."""
