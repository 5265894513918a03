"""The operator's web console as a Starlette app over a :class:`~central.view.CentralView`.

Routes: ``GET /`` the console page (static HTML, CSS and a small script under ``/static``),
``GET /api/snapshot?route=`` the screen now, ``POST /api/alarms/{event_id}/ack`` an operator's
ack, ``GET /api/stream`` the live feed (server-sent events), ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from central.view import AckOutcome, CentralView
from central.web.stream import change_stream

log = structlog.get_logger("central.web")

STATIC = Path(__file__).resolve().parent / "static"
#: The route filter's values; "all" (or nothing) means no filter.
ROUTES = ("nurse", "care")
#: Where the operator's name may come from, besides a JSON or form field ``by``.
OPERATOR_HEADER = "x-operator"
MAX_NAME = 80
MAX_BODY = 4096
#: The page loads nothing from elsewhere and runs no inline script; no other site may frame it.
PAGE_HEADERS = {
    "cache-control": "no-cache",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class WebError(Exception):
    """A request the console refuses: its HTTP status and a message for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(obj: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(obj), status_code=status, media_type="application/json")


def _route_param(request: Request) -> str | None:
    route = request.query_params.get("route", "").strip().lower()
    if route in ("", "all"):
        return None
    if route not in ROUTES:
        raise WebError(400, f"unknown route {route!r}: use all, nurse or care")
    return route


async def _operator(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise WebError(413, f"request body over {MAX_BODY} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    by: Any = None
    if body and ctype == "application/json":
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise WebError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise WebError(400, 'the body must be a JSON object like {"by": "operator name"}')
        by = doc.get("by")
    elif body and ctype == "application/x-www-form-urlencoded":
        by = dict(parse_qsl(body.decode("utf-8", "replace"))).get("by")
    if by is None:
        by = request.headers.get(OPERATOR_HEADER)
    if not isinstance(by, str) or not by.strip():
        raise WebError(400, "who is acknowledging? give the operator's name as 'by' (JSON or form) or an X-Operator header")
    by = by.strip()
    if len(by) > MAX_NAME:
        raise WebError(400, f"the operator's name is over {MAX_NAME} characters")
    return by


def _same_origin(request: Request) -> bool:
    """A browser's cross-site POST carries a foreign Origin: refuse it (no acks from other sites)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def ack_status(outcome: AckOutcome) -> int:
    """The HTTP status for what came of an ack: 200 when the hub confirmed it."""
    if outcome.ok:
        return 200
    if outcome.result == "unknown_event":
        return 404
    if outcome.result is None:
        return 502  # no reply from the hub, or the central could not ask it (the error says which)
    return 409  # the hub answered, and refused


def make_app(view: CentralView, *, keepalive_s: float = 15.0, stopping: asyncio.Event | None = None) -> Starlette:
    """The console app over ``view``. Set ``stopping`` to end every open live stream (server shutdown)."""
    stop = stopping if stopping is not None else asyncio.Event()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def healthz(request: Request) -> Response:
        return _json({"ok": True})

    async def snapshot(request: Request) -> Response:
        route = _route_param(request)
        try:
            snap = await view.snapshot(route=route)
        except Exception as exc:  # the engine failed: say so, keep serving
            log.error("web_snapshot_failed", route=route, error=repr(exc))
            raise WebError(503, f"the central could not read its state: {exc}") from None
        return _json(snap)

    async def ack(request: Request) -> Response:
        event_id = request.path_params["event_id"]
        if not _same_origin(request):
            raise WebError(403, "an ack from another site's page is refused")
        by = await _operator(request)
        try:
            outcome = await view.ack(event_id, by)
        except Exception as exc:  # the engine failed: say so, keep serving
            log.error("web_ack_failed", event_id=event_id, by=by, error=repr(exc))
            outcome = AckOutcome(ok=False, event_id=event_id, by=by, error=f"the central could not send the ack: {exc}")
            return _json(outcome, 502)
        status = ack_status(outcome)
        log.info("web_ack", event_id=event_id, by=by, ok=outcome.ok, result=outcome.result,
                 error=outcome.error, status=status)
        return _json(outcome, status)

    async def stream(request: Request) -> Response:
        peer = f"{request.client.host}:{request.client.port}" if request.client else "?"
        body = change_stream(view, stopping=stop, keepalive_s=keepalive_s, peer=peer)
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        log.info("web_refused", path=request.url.path, status=exc.status, error=exc.message)
        return JSONResponse({"ok": False, "error": exc.message}, status_code=exc.status)

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/snapshot", snapshot),
        Route("/api/alarms/{event_id}/ack", ack, methods=["POST"]),
        Route("/api/stream", stream),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={WebError: refused})
    app.state.stopping = stop
    return app
