"""sitepulse: self-hosted observability and lead intelligence for lead-generation websites."""

__version__ = "0.1.0"
