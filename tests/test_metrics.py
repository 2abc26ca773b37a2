"""`/metrics`: counts that move with what happened, in Prometheus' text format, no secret in it,
and only for whoever may read it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot import jobs
from bot.actors import Actor
from bot.chat.shell.adapter import Shell
from bot.services import Services
from bot.web import create_app
from chargedesk_emulators.stripe import sign
from tests.conftest import REPO, say
from tests.fakes.stripe_env import WEBHOOK_SECRET, FakeStripe
from tests.test_shutdown import Served

JANE = "jane.doe@example.com"
TOKEN = "metrics-scraper-token-0123456789"


async def scrape(services: Services, **client: object) -> httpx.Response:
    """GET /metrics from the app, as a peer at `client` (default: this machine)."""
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        peer = client.pop("peer", ("127.0.0.1", 40000))
        transport = httpx.ASGITransport(app=app, client=peer)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as web:
            return await web.get("/metrics", **client)  # type: ignore[arg-type]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, parsed by prometheus_client's own parser, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def metrics_now(services: Services) -> dict:
    answer = await scrape(services)
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


async def test_a_lookup_through_a_door_counts_its_command_and_gateway_call(
    services: Services, agent: Actor
) -> None:
    before = await metrics_now(services)
    shell = Shell(services, agent, json_lines=True, out=io.StringIO())
    await shell.handle(f"lookup {JANE}")
    after = await metrics_now(services)
    ok = {"door": "shell", "command": "lookup", "outcome": "ok"}
    assert (
        value(after, "chargedesk_commands_total", **ok)
        == value(before, "chargedesk_commands_total", **ok) + 1
    )
    timed = {"gateway": "ledger", "operation": "lookup"}
    assert value(after, "chargedesk_gateway_call_seconds_count", **timed) > value(
        before, "chargedesk_gateway_call_seconds_count", **timed
    )
    # The scrape before this one went through the HTTP door and was counted there.
    assert (
        value(after, "chargedesk_http_requests_total", door="metrics", method="GET", status="200")
        >= 1
    )


async def test_an_approval_moving_through_its_states_is_counted_and_gauged(
    services: Services, agent: Actor, manager: Actor
) -> None:
    before = await metrics_now(services)
    asked = await say(services, agent, "refund ch_jane_1 80 reason: duplicate charged twice")
    assert asked.approval is not None and asked.approval.state == "pending"
    pending = await metrics_now(services)
    assert (
        value(pending, "chargedesk_approvals", state="pending")
        == value(before, "chargedesk_approvals", state="pending") + 1
    )
    await say(services, manager, f"approve {asked.approval.id}")
    after = await metrics_now(services)
    for state in ("pending", "approved", "executing", "succeeded"):
        moved = value(after, "chargedesk_approval_transitions_total", state=state) - value(
            before, "chargedesk_approval_transitions_total", state=state
        )
        assert moved == 1, state
    assert (
        value(after, "chargedesk_approvals", state="succeeded")
        == value(before, "chargedesk_approvals", state="succeeded") + 1
    )
    assert value(after, "chargedesk_approvals", state="pending") == value(
        before, "chargedesk_approvals", state="pending"
    )


async def test_a_failing_gateway_is_counted_by_its_error_code(
    services: Services, stripe: FakeStripe, agent: Actor
) -> None:
    before = await metrics_now(services)
    stripe.emulator.fail_next(20, 500)  # every try of every request of the lookup
    reply = await say(services, agent, f"lookup stripe:{stripe.env.email}")
    assert reply.error is not None or any("stripe" in str(c) for c in reply.cards)
    after = await metrics_now(services)
    failed = {"gateway": "stripe", "operation": "lookup", "code": "unavailable"}
    assert (
        value(after, "chargedesk_gateway_errors_total", **failed)
        == value(before, "chargedesk_gateway_errors_total", **failed) + 1
    )
    assert value(after, "chargedesk_store_up", store="sql") == 1


async def test_metrics_carry_no_email_or_token_typed_in_a_command(
    services: Services, agent: Actor
) -> None:
    shell = Shell(services, agent, json_lines=True, out=io.StringIO())
    for line in (
        f"lookup {JANE}",
        f"{JANE} sk_live_abcdefghijklmnop1234",  # not a command: the words are not a label
        "lookup xoxb-1234567890-abcdefghijkl",
    ):
        await shell.handle(line)
    text = (await scrape(services)).text
    for secret in (JANE, "@", "sk_live_", "xoxb-", "abcdefghijkl"):
        assert secret not in text, secret
    found = samples(text)
    assert value(found, "chargedesk_commands_total", door="shell", command="unparsed",
                 outcome="unknown_command") >= 1  # fmt: skip


@pytest.fixture
async def guarded(services: Services) -> AsyncIterator[Services]:
    services.settings = services.settings.model_copy(
        update={"metrics": services.settings.metrics.model_copy(update={"token": SecretStr(TOKEN)})}
    )
    yield services


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"],
)
async def test_a_forged_or_absent_bearer_is_refused_when_a_token_is_set(
    guarded: Services, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = await scrape(guarded, headers=headers)
    assert answer.status_code == 401
    assert "chargedesk_" not in answer.text


async def test_the_right_bearer_reads_metrics_from_anywhere(guarded: Services) -> None:
    answer = await scrape(
        guarded, headers={"Authorization": f"Bearer {TOKEN}"}, peer=("203.0.113.9", 5000)
    )
    assert answer.status_code == 200 and "chargedesk_store_up" in answer.text


@pytest.mark.parametrize(
    ("peer", "headers"),
    [(("203.0.113.9", 5000), {}), (("127.0.0.1", 5000), {"X-Forwarded-For": "203.0.113.9"})],
)
async def test_without_a_token_only_this_machine_reads_metrics(
    services: Services, peer: tuple[str, int], headers: dict[str, str]
) -> None:
    answer = await scrape(services, peer=peer, headers=headers)
    assert answer.status_code == 403


def test_in_multiprocess_mode_any_web_process_reports_every_process_counts(tmp_path) -> None:
    """Two other processes (say, a worker and another web process) count commands; the
    `serve` process answering /metrics reports the sum, from the shared folder."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "PYTHONPATH": str(REPO),
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "CHARGEDESK_DATA_DIR": str(tmp_path / "data"),
        "CHARGEDESK_LOGS__TO_FILE": "false",
    }
    for times in (2, 3):
        count = f"from bot import metrics\nfor _ in range({times}):\n    metrics.command_done('slack', 'lookup', 'ok', 0.01)"
        subprocess.run([sys.executable, "-c", count], env=env, cwd=tmp_path, check=True, timeout=60)
    served = Served(env, str(tmp_path))
    try:
        started = served.wait_for("Uvicorn running on")
        port = int(started["message"].rsplit(":", 1)[1].split()[0])
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    finally:
        served.proc.terminate()
        served.proc.wait(60)
    assert answer.status_code == 200, answer.text
    found = samples(answer.text)
    ok = {"door": "slack", "command": "lookup", "outcome": "ok"}
    assert value(found, "chargedesk_commands_total", **ok) == 5
    assert value(found, "chargedesk_command_seconds_count", door="slack", command="lookup") == 5
    assert value(found, "chargedesk_store_up", store="redis") == 1


async def test_a_webhook_received_late_shows_its_lag(
    services: Services, stripe: FakeStripe
) -> None:
    stripe.emulator.add_refund(stripe.env.charge_id, 100)
    (event,) = [e for e in stripe.emulator.events if e["type"] == "charge.refunded"]
    event = {**event, "created": int(time.time()) - 120}  # Stripe sent it two minutes ago
    body = json.dumps(event).encode()
    before = await metrics_now(services)
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as web:
            answer = await web.post(
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET, int(time.time()))},
            )
    assert answer.json()["outcomes"] == ["processed"]
    after = await metrics_now(services)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("chargedesk_webhook_lag_seconds_count", gateway="stripe") == 1
    assert 120 <= moved("chargedesk_webhook_lag_seconds_sum", gateway="stripe") < 180
    assert moved("chargedesk_webhook_events_total", gateway="stripe", outcome="processed") == 1


async def test_the_job_queue_depth_is_read_from_redis(services: Services) -> None:
    before = await metrics_now(services)
    await jobs.enqueue(services, "send_email", "em_missing", job_id="metrics-depth", defer=600)
    after = await metrics_now(services)
    assert (
        value(after, "chargedesk_job_queue_depth")
        == value(before, "chargedesk_job_queue_depth") + 1
    )
