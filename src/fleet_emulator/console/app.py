"""The web console's HTTP server: static pages, their JSON API, ``/metrics`` and ``/healthz``.

Built on aiohttp, whose server runs on the event loop it is started from, here the gRPC server's own, so
the console reaches the namespaces and servicers directly and costs no thread. The pages (``static/``, plain
HTML, CSS and JavaScript modules, shipped in the package) call ``POST /api/call/<service>/<method>`` and
read streams from ``POST /api/stream/<service>/<method>`` as JSON lines; both go through the ``Bridge``
(``calls.py``) to the same servicer methods a gRPC client reaches. A refused call is still HTTP 200 with the
gRPC status in its body, as gRPC-Web does; requests that are not JSON get 415, which also keeps other web
sites from steering the emulator through a visitor's browser (a cross-site JSON POST needs a CORS preflight,
which the console never grants). ``/healthz`` mirrors gRPC health; ``/metrics`` is Prometheus's text format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from fleet_emulator import __version__
from fleet_emulator.console.calls import Bridge, Method
from fleet_emulator.telemetry.metrics import render

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
JSON_TYPE = "application/json"
STOP_TIMEOUT_S = 1.0  # what a request still running at stop gets before it is cancelled


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=JSON_TYPE)


class ConsoleApp:
    """The console of one emulator: ``bridge`` for the calls, ``serving`` for ``/healthz``."""

    def __init__(self, bridge: Bridge, serving: Callable[[], bool], grpc_port: Callable[[], int]) -> None:
        self.bridge = bridge
        self.serving = serving
        self.grpc_port = grpc_port
        self.app = web.Application(client_max_size=4 * 1024 * 1024)
        self.app.router.add_get("/", self.index)
        self.app.router.add_static("/static/", STATIC)
        self.app.router.add_get("/api/info", self.info)
        self.app.router.add_post("/api/call/{service}/{method}", self.call)
        self.app.router.add_post("/api/stream/{service}/{method}", self.stream)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_get("/healthz", self.healthz)
        self.runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port); the bound port. ``OSError`` if it cannot listen."""
        self.runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=STOP_TIMEOUT_S, handler_cancellation=True
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        bound: int = self.runner.addresses[0][1]
        return bound

    async def stop(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(self, request: web.Request) -> web.Response:
        bridge = self.bridge
        return _json(
            {
                "namespaces": [n.name for n in bridge.namespaces.created()],
                "tokenRequired": bool(bridge.admin_token),
                "adminEnabled": bridge.admin_on,
                "grpcPort": self.grpc_port(),
                "version": __version__,
            }
        )

    def _method(self, request: web.Request, streaming: bool) -> Method | web.Response:
        """The method the request calls, or why it cannot, as an HTTP answer."""
        if request.content_type != JSON_TYPE:
            return _json({"error": f"send the request as {JSON_TYPE}"}, status=415)
        method = self.bridge.method(request.match_info["service"], request.match_info["method"])
        if method is None or method.streaming != streaming:
            kind = "server-streaming" if streaming else "unary"
            return _json({"error": f"no {kind} method {request.path.split('/', 3)[3]!r}"}, status=404)
        return method

    async def call(self, request: web.Request) -> web.Response:
        method = self._method(request, streaming=False)
        if isinstance(method, web.Response):
            return method
        return _json(await self.bridge.call(method, await request.read(), request.headers))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        method = self._method(request, streaming=True)
        if isinstance(method, web.Response):
            return method
        body = await request.read()
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        answers = self.bridge.stream(method, body, request.headers)
        try:
            async for answer in answers:
                await response.write(json.dumps(answer).encode() + b"\n")
        except ConnectionResetError:
            log.debug("console stream closed by the browser")
        finally:
            await answers.aclose()
        return response

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(self, request: web.Request) -> web.Response:
        serving = self.serving()
        return _json({"status": "SERVING" if serving else "NOT_SERVING"}, status=200 if serving else 503)
