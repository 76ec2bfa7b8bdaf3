"""The ceiling for ingest: a bare Starlette endpoint that only decodes the JSON body.

Served with the same uvicorn settings as `sitepulse serve` (uvloop, httptools,
access log off, one worker), so the gap to sitepulse is the cost of sitepulse.
"""

from __future__ import annotations

import argparse

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sitepulse.cli.serving import uvicorn_config

_decode = msgspec.json.decode
_ACCEPTED = b'{"accepted":1}'


async def collect(request: Request) -> Response:
    """Decode the body (so malformed JSON still costs what it costs) and answer 202."""
    _decode(await request.body())
    return Response(_ACCEPTED, 202, media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/collect", collect, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.Server(uvicorn_config(create_app(), args.host, args.port)).run()


if __name__ == "__main__":
    main()
