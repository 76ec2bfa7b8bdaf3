"""The built-in web UI: server-rendered pages (Jinja2) with Plotly charts.

`ui_routes(runtime)` gives the dashboards and the static files; other pages build on
the same rendering contract (`parse_view`, `render`, `View`: see `render`).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from sitepulse.runtime import Runtime
from sitepulse.web.ui.render import (
    ENV,
    View,
    error_page,
    parse_view,
    principal_of,
    render,
    unauthorized,
)
from sitepulse.web.ui.static import plotly_url, static_routes, static_url

__all__ = [
    "ENV",
    "View",
    "error_page",
    "parse_view",
    "plotly_url",
    "principal_of",
    "render",
    "static_url",
    "ui_routes",
    "unauthorized",
]


def ui_routes(runtime: Runtime) -> list[BaseRoute]:
    """The UI's routes: the executive and marketing dashboards, their JSON, /static/*."""
    from sitepulse.web.ui.dashboards import dashboard_routes

    return [*dashboard_routes(runtime), *static_routes()]
