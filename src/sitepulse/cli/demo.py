"""`sitepulse demo`: the server, the sample site and generated traffic in one process."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel

from sitepulse.auth import AuthDB, Users
from sitepulse.cli.serving import build_server, tune_allocators, tune_gc, untune_gc
from sitepulse.config import Settings, SiteConfig
from sitepulse.demo.catalog import DEFAULT_HOST, DEFAULT_TIMEZONE
from sitepulse.demo.traffic import TrafficConfig, backfill, run_live

log = logging.getLogger("sitepulse.demo")

DEMO_SITE = SiteConfig(
    id="demo",
    name="Northwind Consulting (demo)",
    public_key="pk_demo",
    hosts=(DEFAULT_HOST,),
    timezone=DEFAULT_TIMEZONE,
)


def demo_settings(settings: Settings, *, data: Path, port: int | None) -> Settings:
    """The user's settings with the demo's site, data folder and sample site."""
    server = settings.server.model_copy(
        update={"sample_site": True, **({"port": port} if port else {})}
    )
    storage = settings.storage.model_copy(update={"path": data})
    return settings.model_copy(update={"server": server, "storage": storage, "sites": (DEMO_SITE,)})


async def _traffic(
    base_url: str,
    token: str,
    cfg_seed: int,
    days: int,
    per_minute: float,
    has_history: bool,
    stop: asyncio.Event,
    warm: Callable[[], None],
) -> None:
    cfg = TrafficConfig(
        base_url=base_url,
        site_key=DEMO_SITE.public_key,
        site_token=token,
        seed=cfg_seed,
        backfill_days=days,
        live_visits_per_minute=per_minute,
    )
    async with httpx.AsyncClient(timeout=30.0) as client:
        if days and not has_history:
            started = time.monotonic()
            stats = await backfill(cfg, now_ms=time.time_ns() // 1_000_000, client=client)
            log.info(
                "backfilled %d days: %d visits, %d events, %d leads in %.1f s",
                days,
                stats.visits,
                stats.events_accepted,
                stats.leads_accepted,
                time.monotonic() - started,
            )
        # The first sign-in then finds both dashboards computed (the marketing one also
        # loads scipy, seconds on a small machine).
        started = time.monotonic()
        try:
            await asyncio.to_thread(warm)
        except Exception:  # the pages then compute on first view; the traffic goes on
            log.exception("computing the dashboards after the backfill failed")
        else:
            took = time.monotonic() - started
            log.info("dashboards ready for sign-in (computed in %.1f s)", took)
        await run_live(cfg, client=client, stop=stop)


DEMO_ADMIN = "admin"
DEMO_CREDENTIALS = "demo-credentials.txt"


def demo_admin(auth: AuthDB, data: Path) -> tuple[str, str]:
    """The demo's admin user, created on the first run with a random password that is kept
    (readable by this OS user only) in the data folder so later runs can print it again."""
    saved = data / DEMO_CREDENTIALS
    users = Users(auth)
    if users.get(DEMO_ADMIN) is not None and saved.exists():
        return DEMO_ADMIN, saved.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(12)
    if users.get(DEMO_ADMIN) is None:
        users.add(DEMO_ADMIN, password, "admin", actor="demo")
    else:
        users.set_password(DEMO_ADMIN, password, actor="demo")
    saved.touch(mode=0o600)
    saved.write_text(password + "\n", encoding="utf-8")
    return DEMO_ADMIN, password


def run_demo(
    settings: Settings,
    *,
    port: int | None,
    data: Path,
    backfill_days: int,
    seed: int,
    visits_per_minute: float,
) -> None:
    """Serve the demo until interrupted."""
    settings = demo_settings(settings, data=data, port=port)
    tune_allocators()
    server, runtime = build_server(settings)
    tune_gc()
    base = f"http://{server.config.host}:{server.config.port}"
    token = runtime.tokens[DEMO_SITE.id]
    has_history = bool(runtime.store.query("SELECT count(*) FROM events")[0][0])
    username, password = demo_admin(runtime.auth, data)
    Console().print(
        Panel.fit(
            f"[bold]sitepulse demo[/] — data in {data}\n\n"
            f"  dashboards    {base}/\n"
            f"  sign in as    [bold]{username}[/]  password [bold]{password}[/]\n"
            f"  sample site   {base}/site/  (click around: your visit is recorded)\n"
            f"  metrics       {base}/metrics\n"
            f"  events API    {base}/api/v1/events  (Authorization: Bearer {token})\n"
            f"  OpenAPI       {base}/openapi.json\n\n"
            f"Generating traffic: {backfill_days} days of history"
            f"{' (already there)' if has_history else ''}, then ~{visits_per_minute:g} visits/min."
            "\nCtrl-C stops.",
            border_style="cyan",
        )
    )

    async def main() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        traffic = asyncio.create_task(
            _traffic(
                base,
                token,
                seed,
                backfill_days,
                visits_per_minute,
                has_history,
                stop,
                runtime.warm_dashboards,
            )
        )
        await serving
        stop.set()
        try:
            await asyncio.wait_for(traffic, timeout=5)
        except (TimeoutError, httpx.HTTPError):
            traffic.cancel()

    try:
        asyncio.run(main())
    finally:
        untune_gc()
