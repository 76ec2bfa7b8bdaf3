"""Load settings from an optional YAML file plus SITEPULSE_* environment overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sitepulse.config.models import Settings

ENV_PREFIX = "SITEPULSE_"
# Short names for the settings people change most; the general form is
# SITEPULSE_SECTION__KEY (double underscore between levels).
ENV_ALIASES = {
    "PORT": ("server", "port"),
    "HOST": ("server", "host"),
    "DATA": ("storage", "path"),
}


class ConfigError(Exception):
    """Configuration is invalid; `problems` lists every error as 'key.path: reason'."""

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any]]:
    overrides = []
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "SITEPULSE_CONFIG":
            continue
        key = name[len(ENV_PREFIX) :]
        path = ENV_ALIASES.get(key) or tuple(part.lower() for part in key.split("__"))
        # YAML scalar parsing turns "8001" into 8001 and "[a, b]" into a list.
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        overrides.append((path, value))
    return overrides


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    errors = exc.errors()
    for err in errors:
        loc = err["loc"]
        # A container reported as too short only because its items failed says nothing new.
        if err["type"] == "too_short" and any(
            other["loc"][: len(loc)] == loc and len(other["loc"]) > len(loc) for other in errors
        ):
            continue
        key = ".".join(str(part) for part in loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        got = repr(err.get("input"))
        if len(got) > 120:  # a whole section: the message names the key inside it
            got = got[:117] + "..."
        problems.append(f"{key}: {message} (got {got})")
    return problems


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (else $SITEPULSE_CONFIG, else ./sitepulse.yaml) and apply env overrides."""
    env = os.environ if environ is None else environ
    source = "defaults"
    data: dict[str, Any] = {}
    if path is None and env.get("SITEPULSE_CONFIG"):
        path = Path(env["SITEPULSE_CONFIG"])
    if path is None and Path("sitepulse.yaml").is_file():
        path = Path("sitepulse.yaml")
    if path is not None:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"cannot read file: {exc.strerror}"], source) from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ConfigError([f"{where}invalid YAML: {exc}"], source) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"(top level): expected a mapping (got {loaded!r})"], source)
        data = loaded
    for key_path, value in _env_overrides(env):
        _set_path(data, key_path, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc), source) from exc
