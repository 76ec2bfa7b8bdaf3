"""Configuration models. Unknown keys are rejected; units are in the names."""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sitepulse.config.analysis import (
    AnalysisConfig,
    AttributionSettings,
    ExperimentSettings,
    LeadWebhook,
)
from sitepulse.config.scoring import ScoringConfig

_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Proxies whose X-Forwarded-For we believe; loopback covers nginx on the same host.
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_beacon_bytes: int = Field(default=65_536, ge=1024, le=1_048_576)
    # Serve the sample lead-generation site at /site, instrumented for the first site.
    sample_site: bool = False
    # The sign-in cookie's Secure flag. None: when the request came over https (as a
    # trusted proxy's X-Forwarded-Proto says) or to localhost; true behind a TLS proxy
    # that does not say so.
    secure_cookies: bool | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an IP network: {item!r}") from exc
        return value


class StorageConfig(_Model):
    backend: Literal["duckdb"] = "duckdb"
    path: Path = Path("sitepulse-data")
    memory_limit_mb: int = Field(default=256, ge=32)
    threads: int = Field(default=2, ge=1, le=64)


class IngestConfig(_Model):
    # Bounded queue between request handlers and the single writer.
    queue_max_events: int = Field(default=50_000, ge=100)
    commit_max_events: int = Field(default=20_000, ge=1)
    # Idempotency: an event id seen within this window is stored once.
    dedupe_window_secs: int = Field(default=86_400, ge=60)
    dedupe_max_ids: int = Field(default=300_000, ge=1000)
    session_timeout_secs: int = Field(default=1800, ge=60)
    session_cache_max: int = Field(default=200_000, ge=1000)
    # Browser events older than this (after clock-skew correction) are refused.
    max_event_age_secs: int = Field(default=7 * 86_400, ge=60)
    max_future_secs: int = Field(default=300, ge=0)
    retry_after_secs: int = Field(default=1, ge=1)


class BotsConfig(_Model):
    action: Literal["flag", "drop"] = "flag"


class GeoConfig(_Model):
    # A MaxMind-format database (GeoLite2/GeoIP2 City or Country, DB-IP, ...).
    # Without one, the bundled open country database is used when installed.
    mmdb_path: Path | None = None
    use_bundled: bool = True


class SiteConfig(_Model):
    id: str = "default"
    name: str = "Default site"
    public_key: str = "pk_default"
    # Secret for server-side ingest; generated and kept in the data folder when unset.
    token: str | None = Field(default=None, min_length=16)
    hosts: tuple[str, ...] = ()
    timezone: str = "UTC"
    page_groups: dict[str, str] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _site_id(cls, value: str) -> str:
        if not _SITE_ID.match(value):
            raise ValueError("site id must be lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("page_groups")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for group, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"page group {group!r}: bad regex {pattern!r}: {exc}") from exc
        return value


def _default_sites() -> tuple[SiteConfig, ...]:
    return (SiteConfig(),)


class Settings(_Model):
    server: ServerConfig = Field(default_factory=ServerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    bots: BotsConfig = Field(default_factory=BotsConfig)
    geo: GeoConfig = Field(default_factory=GeoConfig)
    sites: tuple[SiteConfig, ...] = Field(default_factory=_default_sites, min_length=1)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    attribution: AttributionSettings = Field(default_factory=AttributionSettings)
    experiments: tuple[ExperimentSettings, ...] = ()
    lead_webhooks: tuple[LeadWebhook, ...] = ()
    # Funnels besides the built-in lead funnel; see docs/CONFIGURATION.md.
    funnels: tuple[dict[str, Any], ...] = ()
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)

    @field_validator("funnels")
    @classmethod
    def _funnels(cls, value: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        from sitepulse.analyse.base import AnalysisError
        from sitepulse.analyse.funnels import parse_funnel

        names: set[str] = set()
        for i, raw in enumerate(value):
            try:
                definition = parse_funnel(raw)
            except AnalysisError as exc:
                raise ValueError(f"funnels[{i}].{exc.field}: {exc.message}") from exc
            if definition.name in names or definition.name == "lead":
                raise ValueError(f"funnels[{i}].name: {definition.name!r} is used already")
            names.add(definition.name)
        return value

    @model_validator(mode="after")
    def _references(self) -> Settings:
        tiers = {tier.name for tier in self.scoring.tiers}
        for hook in self.lead_webhooks:
            if hook.min_tier not in tiers:
                raise ValueError(
                    f"lead_webhooks: min_tier {hook.min_tier!r} is not a tier {sorted(tiers)}"
                )
        names = [e.name for e in self.experiments]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"experiments: name {name!r} used twice")
        return self

    @model_validator(mode="after")
    def _unique_sites(self) -> Settings:
        for attr in ("id", "public_key"):
            seen: set[str] = set()
            for site in self.sites:
                value = getattr(site, attr)
                if value in seen:
                    raise ValueError(f"duplicate site {attr} {value!r}")
                seen.add(value)
        return self
