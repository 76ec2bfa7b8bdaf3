"""The `sitepulse` command."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from sitepulse.cli.export import export_app
from sitepulse.cli.options import ConfigOption, settings_or_exit
from sitepulse.cli.users import token_app, user_app
from sitepulse.config import ConfigError, Settings, load_config

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Observability and lead intelligence for lead-generation websites.",
)
config_app = typer.Typer(no_args_is_help=True, help="Check and explain configuration.")
app.add_typer(config_app, name="config")
app.add_typer(export_app, name="export")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")

console = Console(stderr=True, emoji=False)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=True)],
    )
    # One line per HTTP request of the demo's generator would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _settings(path: Path | None) -> Settings:
    return settings_or_exit(path, console)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (server.host)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (server.port)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run sitepulse: ingest, store, metrics and API in one process."""
    from sitepulse.cli.serving import run_server

    _logging(verbose)
    settings = _settings(config)
    run_server(settings, host=host, port=port)


@app.command()
def demo(
    config: ConfigOption = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port (default 8000 or $SITEPULSE_PORT)")
    ] = None,
    data: Annotated[Path, typer.Option(help="Data folder for the demo")] = Path("sitepulse-demo"),
    backfill_days: Annotated[int, typer.Option(min=0, max=90)] = 14,
    seed: Annotated[int, typer.Option(help="Seed of the traffic generator")] = 7,
    visits_per_minute: Annotated[float, typer.Option(min=0)] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve sitepulse with a sample site and realistic generated traffic."""
    from sitepulse.cli.demo import run_demo

    _logging(verbose)
    settings = _settings(config)
    run_demo(
        settings,
        port=port,
        data=data,
        backfill_days=backfill_days,
        seed=seed,
        visits_per_minute=visits_per_minute,
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    config: ConfigOption = None,
    site: Annotated[str | None, typer.Option(help="Site id (default: the first site)")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: by extension)")
    ] = None,
) -> None:
    """Import events from a JSONL or CSV file; bad lines are reported and skipped."""
    from sitepulse.cli.importer import run_import

    _logging(False)
    settings = _settings(config)
    code = run_import(settings, file, site_id=site, fmt=fmt, console=console)
    raise typer.Exit(code)


@app.command()
def report(
    name: Annotated[
        str,
        typer.Argument(
            help="kpis, vitals, funnel, form-failures, attribution, experiments, sample-size, leads"
        ),
    ],
    config: ConfigOption = None,
    site: Annotated[str | None, typer.Option(help="Site id (default: the first site)")] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Start: date (site time zone), ISO time or ms")
    ] = None,
    to: Annotated[str | None, typer.Option(help="End (exclusive); default now")] = None,
    days: Annotated[int | None, typer.Option(help="Length when --from is not given (30)")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="More parameters as key=value, e.g. -p by=device"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    url: Annotated[
        str | None, typer.Option(help="A running sitepulse (default: the configured address)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="SITEPULSE_TOKEN", help="The site's token for --url"),
    ] = None,
) -> None:
    """Print an analysis: from a running server's API, else from the data folder."""
    from sitepulse.cli.report import ReportFailed, fetch_remote, render, run_local, server_is_up

    if fmt not in ("table", "csv", "json"):
        console.print(f"--format must be table, csv or json (got {fmt!r})")
        raise typer.Exit(2)
    settings = _settings(config)
    chosen = next((s for s in settings.sites if s.id == site), None) if site else settings.sites[0]
    if chosen is None:
        console.print(f"--site: no site {site!r} in the configuration")
        raise typer.Exit(2)
    params: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            console.print(f"--param must be key=value (got {item!r})")
            raise typer.Exit(2)
        params[key] = value
    given: dict[str, object] = {"from": from_, "to": to, "days": days}
    params |= {key: str(value) for key, value in given.items() if value is not None}
    address = url or f"http://{settings.server.host}:{settings.server.port}"
    try:
        if url or server_is_up(address):
            secret = token or chosen.token
            if not secret:
                console.print("--token (or $SITEPULSE_TOKEN) is needed to ask a running server")
                raise typer.Exit(2)
            body = fetch_remote(address, secret, name, params)
        else:
            body = run_local(settings, chosen, name, params)
    except ReportFailed as exc:
        console.print(f"[red]report failed[/]: {exc}", markup=True, soft_wrap=True)
        raise typer.Exit(1) from exc
    # Piped output gets room for wide tables instead of 80 folded columns.
    width = None if sys.stdout.isatty() else 220
    render(name, body, fmt, Console(emoji=False, soft_wrap=fmt != "table", width=width))


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="The YAML file to check")],
) -> None:
    """Validate a configuration file; report every error with its key and value."""
    out = Console(emoji=False)
    try:
        settings = load_config(file)
    except ConfigError as exc:
        out.print(f"[bold red]{len(exc.problems)} problem(s)[/] in {exc.source}:")
        for problem in exc.problems:
            out.print(f"  • {problem}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    out.print(
        f"[green]ok[/]: {file} — {len(settings.sites)} site(s), "
        f"store {settings.storage.backend} at {settings.storage.path}, "
        f"listening on {settings.server.host}:{settings.server.port}",
        soft_wrap=True,
    )


def main() -> None:
    app()
