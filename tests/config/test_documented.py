"""Every setting is documented in docs/CONFIGURATION.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from sitepulse.config.models import Settings, SiteConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_keys(annotation, f"{prefix}{name}."))
        elif name != "sites":
            keys.append(prefix + name)
    return keys


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    keys = _keys(Settings) + _keys(SiteConfig, "sites[].")
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing, f"undocumented settings: {missing}"
