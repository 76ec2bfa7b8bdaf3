"""Running the ASGI app under uvicorn."""

from __future__ import annotations

import ctypes
import gc
import logging
from collections.abc import Sequence

import pyarrow as pa
import uvicorn
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from sitepulse.config import Settings
from sitepulse.runtime import Runtime
from sitepulse.store.base import StoreError
from sitepulse.web.app import create_app

log = logging.getLogger("sitepulse")


def uvicorn_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    # httptools + uvloop: the fastest pure-Python-hosted stack uvicorn offers.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def build_server(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> tuple[uvicorn.Server, Runtime]:
    try:
        runtime = Runtime.build(settings)
    except StoreError as exc:
        raise SystemExit(f"sitepulse: {exc}") from exc
    app = create_app(runtime, extra_routes=extra_routes)
    config = uvicorn_config(app, host or settings.server.host, port or settings.server.port)
    return uvicorn.Server(config), runtime


def tune_allocators(arenas: int = 2) -> None:
    """Keep resident memory down: system allocator for Arrow, fewer glibc arenas."""
    # Arrow's mimalloc pool keeps freed pages for reuse; our Arrow tables are
    # small and short-lived, so the system allocator costs nothing and keeps
    # 10-20 MB less resident (measured with bench/ingest.py-like loads).
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: no arenas to cap
    m_arena_max = -8
    libc.mallopt(m_arena_max, arenas)


def tune_gc() -> None:
    """Collect cyclic garbage less often and never rescan start-up objects.

    Ingest allocates many short-lived containers (decoded structs, row tuples
    for Arrow) and almost no cycles; with the default thresholds the collector
    ran often enough to cost a third of the CPU per event (bench/ingest.py).
    """
    gc.freeze()  # modules, caches and config built at start-up live forever
    gc.set_threshold(50_000, 50, 100)


def untune_gc() -> None:
    """Undo `tune_gc` before exit: frozen objects are never collected, and DuckDB's
    bindings report what is still alive at exit as leaked instances (pages of noise)."""
    gc.unfreeze()
    gc.collect()


def run_server(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted."""
    tune_allocators()
    server, runtime = build_server(settings, host=host, port=port)
    tune_gc()
    cfg = server.config
    log.info(
        "sitepulse listening on http://%s:%s (data in %s)",
        cfg.host,
        cfg.port,
        settings.storage.path,
    )
    for site in settings.sites:
        log.info(
            "site %s: public key %s, token %s",
            site.id,
            site.public_key,
            runtime.tokens[site.id] if site.token is None else "(from config)",
        )
    try:
        server.run()
    finally:
        untune_gc()
