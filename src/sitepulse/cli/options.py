"""What every command shares: the --config option and loading the settings it names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sitepulse.config import ConfigError, Settings, load_config

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="sitepulse.yaml (default: $SITEPULSE_CONFIG or ./sitepulse.yaml)"
    ),
]


def settings_or_exit(path: Path | None, console: Console) -> Settings:
    """The settings of `path`; every problem printed on `console`, then exit status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        console.print(f"[bold red]invalid configuration[/] in {exc.source}:")
        for problem in exc.problems:
            # Problems quote the bad values, which may look like Rich markup.
            console.print(f"  • {problem}", markup=False)
        raise typer.Exit(2) from exc
