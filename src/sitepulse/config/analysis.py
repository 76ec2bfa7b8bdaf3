"""Configuration of the analyses: attribution, experiments, lead webhooks."""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributionSettings(_Model):
    """Touchpoints are the visitor's sessions in the lookback window before the lead."""

    lookback_days: int = Field(default=30, ge=1, le=365)
    half_life_days: float = Field(default=7.0, gt=0, le=365, allow_inf_nan=False)
    # Position-based: first / all middle touches together / last.
    position_weights: tuple[float, float, float] = (0.4, 0.2, 0.4)

    @field_validator("position_weights")
    @classmethod
    def _weights(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(not 0 <= w <= 1 for w in value) or not math.isclose(sum(value), 1.0, abs_tol=1e-9):
            raise ValueError(f"three weights in [0, 1] that sum to 1 are needed, got {value}")
        if value[0] + value[2] <= 0:
            raise ValueError("first + last weight must be above 0")
        return value


class ExperimentSettings(_Model):
    """An A/B test: its exposures are `exposure` events named `name` with props.variant."""

    name: str
    control: str = "control"
    # Planned traffic split by variant; the sample-ratio check compares against it.
    # Empty: an equal split over the variants seen.
    split: dict[str, float] = Field(default_factory=dict)
    # What counts as a conversion: a stored lead, or an event "type:name" (e.g. custom:cta_click).
    metric: str = "lead"
    # The effect worth detecting, relative to the control's rate; sizes the sequential test.
    mde_relative: float = Field(default=0.10, gt=0, le=10)
    # The control's expected conversion rate when planned; None: the observed rate.
    baseline_rate: float | None = Field(default=None, gt=0, lt=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"experiment name must be 1-100 of A-Z a-z 0-9 _ . : - (got {value!r})"
            )
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value != "lead" and not re.match(r"^[a-z_]+:[^\s]{1,100}$", value):
            raise ValueError(
                f"metric must be 'lead' or 'type:name' like 'custom:cta_click' (got {value!r})"
            )
        return value

    @model_validator(mode="after")
    def _split(self) -> ExperimentSettings:
        if self.split:
            if any(w <= 0 for w in self.split.values()):
                raise ValueError(f"split weights must be positive (got {self.split})")
            if self.control not in self.split:
                raise ValueError(f"control {self.control!r} is not in split {sorted(self.split)}")
        return self


class LeadWebhook(_Model):
    """Leads at or above `min_tier` are POSTed to `url` (retried until delivered)."""

    url: str = Field(pattern=r"^https?://")
    min_tier: str = "premium"
    # Signs each body: X-Sitepulse-Signature: sha256=HMAC(secret, body).
    secret: str | None = Field(default=None, min_length=16)
    sites: tuple[str, ...] = ()  # empty: every site
    include_test_leads: bool = False


class AnalysisConfig(_Model):
    """Defaults of the lead-intelligence analyses."""

    kpi_refresh_secs: int = Field(default=60, ge=5, le=3600)
    # Prometheus gauges (conversion rate, leads by tier, ...) cover this trailing window.
    kpi_window_days: int = Field(default=7, ge=1, le=90)
    rescore_interval_secs: int = Field(default=3600, ge=60)
    # Dashboards are served from their last answer while younger than this, recomputed in
    # the background (analyse/archive.py); 0: every view computes its data.
    dashboard_max_age_secs: int = Field(default=60, ge=0, le=3600)
