"""The ASGI app of `chargedesk serve`: health, webhooks, billing pages (/portal), Slack if set."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        Route("/webhooks/{gateway}", webhook, methods=["POST"]),
        Route("/helpdesk/{name}/webhook", helpdesks.endpoint, methods=["POST"]),
        *helpscout_sidebar.routes(settings.helpdesk.helpscout),  # Help Scout dynamic app
        *intercom_inbox.routes(settings.helpdesk.intercom),  # Intercom inbox app (Canvas Kit)
        portal_pages(settings),
        agent_panel(settings),  # the agent panel: Zendesk, Front, Freshdesk, Help Scout links
    ]
    if slack is not None:
        routes.append(Route("/slack/events", slack.endpoint, methods=["POST"]))
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(BodyLimit)])
