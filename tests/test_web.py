"""`chargedesk serve`: the health endpoint a load balancer and the Procfile rely on."""

from __future__ import annotations

import httpx
import redis.asyncio as redis

from bot.web import create_app


async def test_healthz_reports_sql_and_redis(services):
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            ok = await client.get("/healthz")
            real, services.redis = (
                services.redis,
                redis.from_url("redis://127.0.0.1:1/0"),
            )  # nothing listens
            try:
                degraded = await client.get("/healthz")
            finally:
                await services.redis.aclose()
                services.redis = real
    assert (ok.status_code, ok.json()) == (200, {"status": "ok", "sql": "ok", "redis": "ok"})
    assert degraded.status_code == 503 and degraded.json()["sql"] == "ok"
