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


async def test_livez_answers_while_redis_is_away_and_readyz_names_it(services):
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            real, services.redis = services.redis, redis.from_url("redis://127.0.0.1:1/0")
            try:
                live = await client.get("/livez")
                ready = await client.get("/readyz")
            finally:
                await services.redis.aclose()
                services.redis = real
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 503 and ready.json()["redis"] != "ok"


def test_version_names_the_installed_release(capsys):
    from importlib.metadata import version

    import pytest

    from bot.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"chargedesk {version('chargedesk-bot')}\n"
