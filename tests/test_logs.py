"""Logs: one JSON object per line off a terminal (plain text on one), request and approval IDs
on every line inside them, no token or secret setting in any line."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
from collections.abc import Iterator
from typing import IO

import httpx
import pytest
from pydantic import SecretStr

from bot import logs
from bot.actors import Actor
from bot.services import Services
from bot.settings import Settings
from bot.web import create_app
from tests.conftest import say

STRIPE_KEY = "sk_live_51HxAbCdEfGhIjKlMnOpQrStUv"
SLACK_TOKEN = "xoxb-123456789012-123456789012-AbCdEfGhIjKlMnOpQrStUvWx"
BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl"
# A secret setting with no recognisable shape: redacted because the settings mark it secret.
PLAIN_SECRET = "correct-horse-battery-staple-42"


@pytest.fixture
def root() -> Iterator[None]:
    """The root logger as the test found it, afterwards."""
    logger = logging.getLogger()
    saved, level = list(logger.handlers), logger.level
    uvicorn = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
               for n in logs.UVICORN_LOGGERS}  # fmt: skip
    try:
        yield
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in saved:
            logger.addHandler(handler)
        logger.setLevel(level)
        for name, (handlers, propagate) in uvicorn.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate


def configured(settings: Settings, stream: IO[str]) -> None:
    logs.configure(settings.model_copy(update={"logs": settings.logs.model_copy(update={"to_file": False})}),
                   stream=stream)  # fmt: skip


def lines(stream: io.StringIO) -> list[dict]:
    """Every line written, each parsed as one JSON object (fails on any that is not)."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_line_logged_inside_a_request_carries_its_request_id(
    services: Services, root: None
) -> None:
    out = io.StringIO()
    configured(services.settings, out)
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        # A peer from elsewhere: /metrics refuses it and logs that, inside the request.
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as web:
            answer = await web.get("/metrics")
    request_id = answer.headers["x-request-id"]
    refused = [line for line in lines(out) if "/metrics refused" in line["message"]]
    assert len(refused) == 1
    assert refused[0]["request_id"] == request_id
    assert refused[0]["level"] == "warning" and refused[0]["logger"] == "bot.web"
    assert {"time", "level", "logger", "message"} <= refused[0].keys()


async def test_every_line_of_an_approval_carries_its_id(
    services: Services, agent: Actor, manager: Actor, root: None
) -> None:
    out = io.StringIO()
    configured(services.settings, out)
    asked = await say(services, agent, "refund ch_jane_1 80 reason: duplicate charged twice")
    assert asked.approval is not None
    await say(services, manager, f"approve {asked.approval.id}")
    executed = [
        line for line in lines(out) if line["logger"].startswith("bot.") and
        "approval_id" in line
    ]  # fmt: skip
    assert executed, out.getvalue()
    assert {line["approval_id"] for line in executed} == {asked.approval.id}
    # Created, then executed by the manager's vote: lines from both carry it.
    assert {"bot.approvals.workflow", "bot.approvals.executor"} <= {x["logger"] for x in executed}
    # Every line inside a command also carries the request ID the router gave it.
    assert all("request_id" in line for line in executed)


def test_tokens_in_messages_arguments_and_tracebacks_are_redacted(
    settings: Settings, root: None
) -> None:
    secret = settings.model_copy(
        update={"stripe": settings.stripe.model_copy(update={"webhook_secret": SecretStr(PLAIN_SECRET)})}
    )  # fmt: skip
    out = io.StringIO()
    configured(secret, out)
    log = logging.getLogger("bot.test_logs")
    log.info("calling Stripe with %s", STRIPE_KEY)
    log.warning("Slack said no to %s; headers {'Authorization': 'Bearer %s'}", SLACK_TOKEN, BEARER)
    log.info("the webhook secret is %s", PLAIN_SECRET)
    try:
        raise RuntimeError(f"POST failed\nAuthorization: Bearer {BEARER}\nkey={STRIPE_KEY}")
    except RuntimeError:
        log.exception("gateway call failed with rk_test_%s", "abcdefghijklmnop")
    written = out.getvalue()
    for leaked in (STRIPE_KEY, SLACK_TOKEN, BEARER, PLAIN_SECRET, "rk_test_abcdefghijklmnop"):
        assert leaked not in written, leaked
    parsed = lines(out)
    assert len(parsed) == 4  # a traceback stays inside its one line
    assert "[redacted]" in parsed[-1]["exception"] and "RuntimeError" in parsed[-1]["exception"]
    assert parsed[0]["message"] == "calling Stripe with [redacted]"


def test_on_a_terminal_the_log_is_plain_text(settings: Settings, root: None) -> None:
    main, side = os.openpty()
    try:
        with os.fdopen(side, "w", closefd=False) as tty:
            configured(settings, tty)
            with logs.bound(request_id="req-0123456789"):
                logging.getLogger("bot.test_logs").warning("hello %s", STRIPE_KEY)
            tty.flush()
        shown = os.read(main, 4096).decode()
    finally:
        os.close(main)
        os.close(side)
    assert not shown.lstrip().startswith("{")
    assert "WARNING bot.test_logs: hello [redacted] [request_id=req-0123456789]" in shown


def test_the_file_log_is_rotated_and_can_be_turned_off(
    settings: Settings, tmp_path, root: None
) -> None:
    path = tmp_path / "logs" / "bot.log"
    with_file = settings.model_copy(update={"logs": settings.logs.model_copy(
        update={"file": path, "file_max_bytes": 100_000, "file_backups": 2})})  # fmt: skip
    handlers = logs.configure(with_file, stream=io.StringIO())
    log = logging.getLogger("bot.test_logs")
    for n in range(3000):
        log.info("line %d %s", n, "x" * 60)
    assert [h for h in handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["bot.log", "bot.log.1", "bot.log.2"]
    assert path.stat().st_size <= 100_000
    off = settings.model_copy(update={"logs": settings.logs.model_copy(update={"to_file": False})})
    assert logs.log_file(off) is None
    assert all(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in logs.configure(off, stream=io.StringIO()))  # fmt: skip
