"""The ASGI app served by `chargedesk serve`: health now; Slack, portal and webhooks plug in here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.app import Services, open_services
from bot.settings import Settings


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = services or await open_services(settings)
        try:
            yield
        finally:
            if services is None:
                await app.state.services.close()

    async def healthz(request: Request) -> JSONResponse:
        """Ready when SQL and Redis both answer; 503 names the one that does not."""
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

    return Starlette(routes=[Route("/healthz", healthz)], lifespan=lifespan)
