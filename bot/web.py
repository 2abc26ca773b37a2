"""The ASGI app of `chargedesk serve`: health, webhooks, billing pages (/portal), Slack if set."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot import logs, metrics
from bot.gateways.base import GatewayError, WebhookRejected
from bot.helpdesk.helpscout import sidebar as helpscout_sidebar
from bot.helpdesk.intercom import inbox as intercom_inbox
from bot.helpdesk.registry import open_helpdesks
from bot.helpdesk.webhook import HelpdeskWebhooks
from bot.jobs import background_worker
from bot.panel.app import mount as agent_panel
from bot.portal import redact
from bot.portal.app import mount as portal_pages
from bot.services import Services
from bot.settings import Settings
from bot.webhooks import MAX_BODY, receive
from bot.wiring import open_services

log = logging.getLogger(__name__)


class BodyLimit:
    """At most `limit` bytes of request body, on every route: 413 instead of reading more.

    Webhooks, Slack's endpoint and the billing pages all read a body before they can
    check its signature or form token; without a cap anyone could make them hold any
    amount in memory. A declared Content-Length over the cap is refused before a byte is
    read; a body sent without one (chunked) is counted as it streams in and refused the
    moment it passes the cap.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Starlette answers an HTTPException raised while the route reads: 413.
                    raise HTTPException(413, f"a request body has at most {self.limit:,} bytes")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.warning("%s %r refused: body over %s bytes", scope["method"], scope["path"], self.limit)
        answer = JSONResponse(
            {"error": f"a request body has at most {self.limit:,} bytes"}, status_code=413
        )
        await answer(scope, receive, send)


# A request ID a caller (a proxy) sends is kept if it is a plain word; anything else is replaced.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# Headers a proxy adds: a request carrying one did not come from this machine, whatever its peer.
_FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")


class Observed:
    """Every HTTP request: a request ID bound to its log lines (and answered in X-Request-ID),
    its latency and status counted per door (`chargedesk_http_requests_total`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else logs.new_id()
        status = 500  # what is counted if the app fails before it answers

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        started = time.perf_counter()
        try:
            with logs.bound(request_id=request_id):
                await self.app(scope, receive, answering)
        finally:
            metrics.http_done(scope["path"], scope["method"], status, time.perf_counter() - started)


def metrics_allowed(request: Request, token: str | None) -> bool:
    """With a token: only `Authorization: Bearer <token>` (compared in constant time). Without
    one: only a peer on this machine, and only if no proxy forwarded the request."""
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )
    if any(name in dict(request.scope["headers"]) for name in _FORWARDED):
        return False
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # a Unix socket or a test client's made-up name
        return False


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    # uvicorn's access log prints each path requested, billing-page links included.
    redact.install(loggers=redact.UVICORN_LOGGERS)
    slack = None
    if settings.slack.bot_token is not None and settings.slack.signing_secret is not None:
        from bot.chat.slack.adapter import SlackBot  # slack-bolt is only imported when Slack is on

        slack = SlackBot(settings.slack)
    # New-ticket webhooks of every configured helpdesk (bot/helpdesk/webhook.py).
    helpdesks = HelpdeskWebhooks(open_helpdesks(settings))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = services or await open_services(settings)
        app.state.slack = slack
        if slack is not None:
            slack.bind(app.state.services)
        # Whoever opened the services runs the jobs: here, or the caller that passed them in.
        worker = background_worker(app.state.services) if services is None else nullcontext()
        try:
            async with worker:
                yield
        finally:
            if slack is not None:
                await slack.aclose()  # answers already under way still reach Slack
            await helpdesks.aclose()
            if services is None:
                await app.state.services.close()
                log.info("stopped: jobs drained, gateways, SQL and Redis closed")

    async def livez(request: Request) -> JSONResponse:
        """The process is up and serving: no store is asked, so a Redis or SQL blip never
        makes an orchestrator restart every process that uses this as its liveness probe."""
        return JSONResponse({"status": "ok"})

    async def healthz(request: Request) -> JSONResponse:
        """Ready when SQL and Redis both answer; 503 names the one that does not (`/readyz`)."""
        svc: Services = request.app.state.services
        checks: dict[str, str] = {}
        try:
            async with svc.db.read() as session:
                await session.execute(text("SELECT 1"))
            checks["sql"] = "ok"
        except Exception as exc:
            checks["sql"] = type(exc).__name__
        try:
            await svc.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = type(exc).__name__
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", **checks},
            status_code=200 if healthy else 503,
        )

    async def metrics_page(request: Request) -> Response:
        """Prometheus metrics: this process's counts (or every process's, in multiprocess
        mode) and the stores' gauges; refused unless `metrics_allowed`."""
        token = settings.metrics.token
        if not metrics_allowed(request, token.get_secret_value() if token else None):
            log.warning("/metrics refused to %s", request.client.host if request.client else "?")
            return PlainTextResponse(
                "metrics need a bearer token" if token else "metrics answer this machine only",
                status_code=401 if token else 403,
                headers={"WWW-Authenticate": "Bearer"} if token else None,
            )
        body = await metrics.exposition(request.app.state.services)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    async def webhook(request: Request) -> JSONResponse:
        """A gateway's webhook: 400 and nothing changed unless the signature is genuine and fresh."""
        svc: Services = request.app.state.services
        name = request.path_params["gateway"]
        body = await request.body()
        try:
            outcomes = await receive(svc, name, body, request.headers)
        except WebhookRejected as exc:
            log.warning("%s webhook rejected: %s", name, exc.message)
            return JSONResponse({"error": exc.message}, status_code=400)
        except GatewayError as exc:  # unknown gateway, or one that takes no webhooks
            return JSONResponse({"error": exc.message}, status_code=404)
        if request.app.state.slack is not None and "processed" in outcomes:
            await request.app.state.slack.deliver_alerts()  # the alert reaches people at once
        return JSONResponse({"received": len(outcomes), "outcomes": outcomes})

    routes = [
        Route("/livez", livez),
        Route("/readyz", healthz),
        Route("/healthz", healthz),
        Route("/metrics", metrics_page),
        Route("/webhooks/{gateway}", webhook, methods=["POST"]),
        Route("/helpdesk/{name}/webhook", helpdesks.endpoint, methods=["POST"]),
        *helpscout_sidebar.routes(settings.helpdesk.helpscout),  # Help Scout dynamic app
        *intercom_inbox.routes(settings.helpdesk.intercom),  # Intercom inbox app (Canvas Kit)
        portal_pages(settings),
        agent_panel(settings),  # the agent panel: Zendesk, Front, Freshdesk, Help Scout links
    ]
    if slack is not None:
        routes.append(Route("/slack/events", slack.endpoint, methods=["POST"]))
    return Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(Observed), Middleware(BodyLimit)]
    )
