"""`sitepulse export`: configuration for the tools sitepulse deploys onto."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sitepulse.export.grafana import DEFAULT_DATASOURCE_UID, DEFAULT_PROMETHEUS_URL

export_app = typer.Typer(
    no_args_is_help=True, help="Write configuration for Grafana and the other tools."
)


@export_app.callback()
def export() -> None:
    """Write configuration for Grafana and the other tools sitepulse deploys onto."""
    # A callback keeps `grafana` a subcommand while it is the only one.


@export_app.command("grafana")
def grafana(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder to write provisioning and dashboards to")
    ],
    prometheus_url: Annotated[
        str, typer.Option(help="Where Grafana reaches the Prometheus that scrapes sitepulse")
    ] = DEFAULT_PROMETHEUS_URL,
    datasource_uid: Annotated[
        str, typer.Option(help="uid of the provisioned Prometheus data source")
    ] = DEFAULT_DATASOURCE_UID,
) -> None:
    """Write Grafana provisioning (data source, dashboard provider) and the dashboards."""
    from sitepulse.export.grafana import export_grafana

    out = Console(emoji=False)
    try:
        written = export_grafana(
            directory, prometheus_url=prometheus_url, datasource_uid=datasource_uid
        )
    except (ValueError, OSError) as exc:
        Console(stderr=True, emoji=False).print(f"[bold red]export failed[/]: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    for path in written:
        out.print(f"[green]wrote[/] {escape(str(path))}", soft_wrap=True)
    provisioning = written[0].parent.parent
    out.print(
        f"Point Grafana's provisioning folder (paths.provisioning) at {escape(str(provisioning))}",
        soft_wrap=True,
    )
