"""Typed configuration: models, the loader and its error report."""

from sitepulse.config.loader import ConfigError, load_config
from sitepulse.config.models import Settings, SiteConfig

__all__ = ["ConfigError", "Settings", "SiteConfig", "load_config"]
