"""Intercom's inbox app: signed Canvas Kit requests into `chargedesk serve`, canvases out.

Each request is what Intercom sends (admin, conversation, contact; on submit the
component clicked, the inputs and the current canvas with our stored_data), signed
with the app's client secret; every canvas answered is validated against the Canvas
Kit objects of Intercom's published 2.11 description.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30Validator
from pydantic import SecretStr

import chargedesk_emulators
from bot import notify
from bot.actors import Role
from bot.approvals.policy import Policy
from bot.demo.dataset import load_demo
from bot.services import Services
from bot.settings import HelpdeskSettings, IntercomSettings, Settings
from bot.store.tables import LedgerCharge, LedgerCustomer
from bot.web import create_app
from bot.wiring import open_services
from tests.conftest import person, refunded, say

pytestmark = [pytest.mark.storage]

SECRET = "intercom-client-secret-0123456789"
AGENT = "alex@example.com"
MANAGER = "maria@example.com"
OTHER_MANAGER = "mark@example.com"
STRANGER = "nobody@example.com"
JANE = "jane.doe@example.com"
ADMIN_IDS = {AGENT: "101", MANAGER: "102", OTHER_MANAGER: "103", STRANGER: "199"}
CANVAS_KIT = Path(chargedesk_emulators.__file__).parent / "data" / "intercom" / "canvas_kit.json"


@cache
def canvas_kit() -> dict[str, Any]:
    return json.loads(CANVAS_KIT.read_text())["components"]


def schema_problem(answer: dict[str, Any], kind: str = "initialize_response") -> str | None:
    """What the published Canvas Kit objects refuse in an answer, if anything."""
    schema = {"$ref": f"#/components/schemas/{kind}", "components": canvas_kit()}
    error = best_match(OAS30Validator(schema).iter_errors(answer))
    return None if error is None else f"{error.json_path}: {error.message}"


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def intercom_settings(**changes: Any) -> IntercomSettings:
    values: dict[str, Any] = {
        "client_secret": SecretStr(SECRET),
        "agents": [AGENT],
        "managers": [MANAGER, OTHER_MANAGER.upper()],
    }
    return IntercomSettings(**(values | changes))


@dataclass
class Inbox:
    """Intercom's side: a teammate opening a conversation and clicking on the canvas."""

    services: Services
    web: httpx.AsyncClient

    async def post(
        self, step: str, payload: dict[str, Any], *, signature: str | None = "sign"
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            headers["X-Body-Signature"] = sign(body)
        elif signature is not None:
            headers["X-Body-Signature"] = signature
        return await self.web.post(f"/helpdesk/intercom/{step}", content=body, headers=headers)

    @staticmethod
    def request(who: str, contact: str | None, conversation: str = "9001") -> dict[str, Any]:
        return {
            "workspace_id": "ws_test", "workspace_region": "US",
            "admin": {"type": "admin", "id": ADMIN_IDS.get(who, "150"), "name": who.split("@")[0].capitalize(), "email": who},
            "conversation": {"type": "conversation", "id": conversation},
            "contact": {"type": "user", "id": "c_1", "email": contact} if contact else {"type": "lead", "id": "c_2"},
            "context": {"location": "conversation"},
            "card_creation_options": {},
        }  # fmt: skip

    async def open(
        self, who: str, contact: str | None = JANE, conversation: str = "9001"
    ) -> dict[str, Any]:
        response = await self.post("initialize", self.request(who, contact, conversation))
        assert response.status_code == 200, response.text
        answer = response.json()
        assert schema_problem(answer) is None, schema_problem(answer)
        return answer["canvas"]

    async def click(
        self,
        who: str,
        canvas: dict[str, Any],
        label: str,
        values: dict[str, Any] | None = None,
        *,
        contact: str | None = JANE,
        conversation: str = "9001",
    ) -> dict[str, Any]:
        payload = self.request(who, contact, conversation) | {
            "component_id": button(canvas, label)["id"],
            "input_values": values or {},
            "current_canvas": canvas,
        }
        return await self.send(payload)

    async def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        response = await self.post("submit", payload)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert schema_problem(answer, "submit_response") is None
        return answer["canvas"]


def components(canvas: dict[str, Any]) -> list[dict[str, Any]]:
    return canvas["content"]["components"]


def button(canvas: dict[str, Any], label: str) -> dict[str, Any]:
    found = [c for c in components(canvas) if c["type"] == "button" and label in c["label"]]
    assert found, f"no button {label!r} in {labels(canvas)}"
    return found[0]


def labels(canvas: dict[str, Any]) -> list[str]:
    return [c["label"] for c in components(canvas) if c["type"] == "button"]


def shown(canvas: dict[str, Any]) -> str:
    """Everything a teammate reads on the canvas, one line per piece."""
    out = []
    for c in components(canvas):
        if c["type"] == "text":
            out.append(c["text"])
        elif c["type"] == "list":
            out += [f"{i['title']} · {i.get('subtitle', '')}" for i in c["items"]]
        elif c["type"] == "data-table":
            out += [f"{i['field']}: {i['value']}" for i in c["items"]]
        elif c["type"] in ("button", "input", "textarea", "dropdown"):
            out.append(c.get("label", ""))
    return "\n".join(out)


def refusals(canvas: dict[str, Any]) -> list[str]:
    """The refusals drawn on a canvas (a danger section's bold title is not one)."""
    return [
        c["text"]
        for c in components(canvas)
        if c["type"] == "text" and c.get("style") == "error" and not c["text"].startswith("**")
    ]


def size(canvas: dict[str, Any]) -> int:
    return len(json.dumps(canvas["content"], separators=(",", ":")).encode())


@pytest.fixture
def canvas_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"helpdesk": HelpdeskSettings(intercom=intercom_settings())})


@pytest.fixture
async def inbox(canvas_settings: Settings, policy: Policy) -> AsyncIterator[Inbox]:
    services = await open_services(canvas_settings, policy=policy)
    await load_demo(services.db)
    app = create_app(canvas_settings, services)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bot") as web:
                yield Inbox(services, web)
    finally:
        await services.close()


async def charge_rows(services: Services) -> int:
    from sqlalchemy import func, select

    async with services.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(LedgerCharge)) or 0)


# --- signatures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [None, "", "deadbeef" * 8, sign(b"{}"), "sha256=" + "0" * 64],
    ids=["unsigned", "empty", "forged", "another body", "prefixed"],
)
async def test_unsigned_and_forged_requests_are_refused_with_nothing_done(
    inbox: Inbox, signature: str | None
) -> None:
    payload = Inbox.request(AGENT, JANE)
    for step in ("initialize", "submit"):
        response = await inbox.post(step, payload, signature=signature)
        assert response.status_code == 401
        assert "canvas" not in response.json()


async def test_a_request_signed_with_another_secret_is_refused(inbox: Inbox) -> None:
    body = json.dumps(Inbox.request(AGENT, JANE)).encode()
    response = await inbox.web.post(
        "/helpdesk/intercom/initialize", content=body,
        headers={"X-Body-Signature": sign(body, "not-the-client-secret")},
    )  # fmt: skip
    assert response.status_code == 401


@pytest.mark.approvals
async def test_a_tampered_body_is_refused_and_no_money_moves(inbox: Inbox) -> None:
    canvas = await inbox.open(AGENT)
    form = await inbox.click(AGENT, canvas, "Refund ch_jane_1")
    payload = Inbox.request(AGENT, JANE) | {
        "component_id": "form_submit",
        "input_values": {"f_amount": "20.00", "f_reason_code": "duplicate", "f_reason_text": "x"},
        "current_canvas": form,
    }
    body = json.dumps(payload).encode()
    signature = sign(body)
    tampered = body.replace(b'"20.00"', b'"50.00"')
    response = await inbox.web.post(
        "/helpdesk/intercom/submit", content=tampered, headers={"X-Body-Signature": signature}
    )
    assert response.status_code == 401
    assert await refunded(inbox.services, "ch_jane_1") == 0


async def test_without_a_client_secret_there_is_no_inbox_app(
    settings: Settings, policy: Policy
) -> None:
    quiet = settings.model_copy(update={"helpdesk": HelpdeskSettings()})
    paths = {getattr(r, "path", "") for r in create_app(quiet).routes}
    assert "/helpdesk/intercom/initialize" not in paths


# --- the card ----------------------------------------------------------------------------


async def test_the_canvas_shows_the_contacts_billing_with_exact_amounts(inbox: Inbox) -> None:
    canvas = await inbox.open(AGENT)
    text = shown(canvas)
    assert "Jane Doe" in text
    assert "jane.doe@example.com (verified)" in text
    assert "ch_jane_1" in text and "€120.00" in text
    assert "sub_jane_pro" in text
    assert any(label.startswith("Refund ch_jane_1") for label in labels(canvas))
    assert any(label.startswith("Cancel sub_jane_pro") for label in labels(canvas))
    assert any(label.startswith("Email receipt ch_jane_1") for label in labels(canvas))
    assert size(canvas) < 64 * 1024


async def test_a_match_by_a_typed_id_says_it_is_not_verified(inbox: Inbox) -> None:
    canvas = await inbox.open(AGENT, contact=None)
    assert "no email address" in shown(canvas)
    found = await inbox.click(AGENT, canvas, "Search", {"search_query": "ch_jane_1"}, contact=None)
    text = shown(found)
    assert "not verified" in text and "Jane Doe" in text


async def test_customer_names_with_html_and_markdown_are_inert(inbox: Inbox) -> None:
    name = "**Eve** [click](https://evil.example) <img src=x onerror=alert(1)> _x_ `y`"
    async with inbox.services.db.write() as session:
        session.add(LedgerCustomer(id="cus_eve", email="eve@example.com", name=name,
                                   created=datetime(2026, 1, 1, tzinfo=UTC)))  # fmt: skip
    canvas = await inbox.open(AGENT, contact="eve@example.com")
    header = next(
        c["text"] for c in components(canvas) if c["type"] == "text" and "Eve" in c["text"]
    )
    assert "\\*\\*Eve\\*\\*" in header and "\\[click\\]" in header and "\\<img" in header
    assert "](https://evil.example)" not in header.replace("\\]", "")


# --- acting from the canvas --------------------------------------------------------------


@pytest.mark.approvals
async def test_a_refund_under_the_limit_from_the_canvas_executes_once(inbox: Inbox) -> None:
    canvas = await inbox.open(AGENT)
    form = await inbox.click(AGENT, canvas, "Refund ch_jane_1")
    kinds = {c["id"]: c["type"] for c in components(form) if "id" in c}
    assert kinds["f_amount"] == "input" and kinds["f_reason_code"] == "dropdown"
    values = {"f_amount": "20.00", "f_reason_code": "duplicate", "f_reason_text": "charged twice"}
    done = await inbox.click(AGENT, form, "Request refund", values)
    assert await refunded(inbox.services, "ch_jane_1") == 2000
    assert ": done" in shown(done)
    # The same form sent again (a double click, a replay) runs nothing more.
    again = await inbox.click(AGENT, form, "Request refund", values)
    assert "already sent" in shown(again)
    assert await refunded(inbox.services, "ch_jane_1") == 2000
    # The next canvas of the conversation still shows what was done.
    assert ": done" in shown(await inbox.open(AGENT))


@pytest.mark.approvals
async def test_the_same_form_sent_twice_at_once_refunds_once(inbox: Inbox) -> None:
    form = await inbox.click(AGENT, await inbox.open(AGENT), "Refund ch_jane_1")
    values = {"f_amount": "20.00", "f_reason_code": "duplicate", "f_reason_text": "twice"}
    answers = await asyncio.gather(
        *(inbox.click(AGENT, form, "Request refund", values) for _ in range(4))
    )
    assert sum(": done" in shown(a) and "already sent" not in shown(a) for a in answers) == 1
    assert await refunded(inbox.services, "ch_jane_1") == 2000


async def test_a_button_that_is_not_on_the_card_runs_nothing(inbox: Inbox) -> None:
    canvas = await inbox.open(AGENT)
    payload = Inbox.request(AGENT, JANE) | {
        "component_id": "b999", "input_values": {}, "current_canvas": canvas,
    }  # fmt: skip
    assert "not on this card" in shown(await inbox.send(payload))


async def test_a_failure_on_our_side_still_answers_a_canvas(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.helpdesk.intercom.door import IntercomDoor

    async def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(IntercomDoor, "_card", broken)
    response = await inbox.post("initialize", Inbox.request(AGENT, JANE))
    assert response.status_code == 200 and schema_problem(response.json()) is None
    assert "failed on our side" in shown(response.json()["canvas"])


@pytest.mark.approvals
async def test_a_refused_field_goes_back_into_the_form(inbox: Inbox) -> None:
    form = await inbox.click(AGENT, await inbox.open(AGENT), "Refund ch_jane_1")
    values = {"f_amount": "500.00", "f_reason_code": "duplicate", "f_reason_text": "x"}
    again = await inbox.click(AGENT, form, "Request refund", values)
    assert refusals(again) and "500" in shown(again)
    assert await refunded(inbox.services, "ch_jane_1") == 0


@pytest.mark.approvals
async def test_a_refund_over_the_limit_waits_for_a_manager_and_the_canvas_shows_the_outcome(
    inbox: Inbox,
) -> None:
    inbox.services.settings = inbox.services.settings.model_copy(
        update={"slack": inbox.services.settings.slack.model_copy(update={"approvals_channel": "C0APPROVALS"})}
    )  # fmt: skip
    form = await inbox.click(AGENT, await inbox.open(AGENT), "Refund ch_jane_1")
    values = {"f_amount": "80.00", "f_reason_code": "duplicate", "f_reason_text": "twice"}
    waiting = await inbox.click(AGENT, form, "Request refund", values)
    text = shown(waiting)
    assert "Waiting for approval apr_" in text
    approval_id = text.split("Waiting for approval ", 1)[1].split(":", 1)[0]
    assert await refunded(inbox.services, "ch_jane_1") == 0
    # The agent may not approve; posted where managers work: the chat approvals channel.
    assert not any(label.startswith("Approve") for label in labels(waiting))
    queued = [
        card for _, kind, card in await notify.pending(inbox.services.db) if kind == "approval"
    ]
    assert [c.actions[0].command for c in queued] == [f"approve {approval_id}"]
    # A manager approves elsewhere (the shell); the next canvas shows the outcome.
    reply = await say(
        inbox.services, person("boss", Role.manager, "shell"), f"approve {approval_id}"
    )
    assert reply.error is None
    assert await refunded(inbox.services, "ch_jane_1") == 8000
    after = shown(await inbox.open(AGENT))
    assert approval_id in after and ": done" in after


@pytest.mark.approvals
async def test_a_manager_approves_on_the_canvas_but_never_their_own_request(
    inbox: Inbox,
) -> None:
    form = await inbox.click(AGENT, await inbox.open(AGENT), "Refund ch_jane_1")
    values = {"f_amount": "80.00", "f_reason_code": "duplicate", "f_reason_text": "twice"}
    await inbox.click(AGENT, form, "Request refund", values)
    seen = await inbox.open(MANAGER)
    approved = await inbox.click(MANAGER, seen, "Approve")
    assert ": done" in shown(approved)
    again = await inbox.click(OTHER_MANAGER, seen, "Approve")  # a stale copy of the canvas
    assert await refunded(inbox.services, "ch_jane_1") == 8000
    assert "Approve" not in labels(again)


@pytest.mark.approvals
async def test_four_eyes_compares_people_across_intercom_and_slack(
    inbox: Inbox, policy: Policy
) -> None:
    inbox.services.policy = policy.model_copy(
        update={"people": {MANAGER: [f"intercom:{MANAGER}", "slack:U0MARIA"]}}
    )
    inbox.services.policy.refund.limits["manager"] = inbox.services.policy.refund.limits["agent"]
    form = await inbox.click(MANAGER, await inbox.open(MANAGER), "Refund ch_jane_1")
    values = {"f_amount": "80.00", "f_reason_code": "duplicate", "f_reason_text": "twice"}
    waiting = shown(await inbox.click(MANAGER, form, "Request refund", values))
    approval_id = waiting.split("Waiting for approval ", 1)[1].split(":", 1)[0]
    in_slack = person("U0MARIA", Role.manager, "slack")
    reply = await say(inbox.services, in_slack, f"approve {approval_id}")
    assert reply.error is not None and "your own request" in reply.error.message
    assert await refunded(inbox.services, "ch_jane_1") == 0


# --- roles -------------------------------------------------------------------------------


@pytest.mark.approvals
async def test_an_unknown_teammate_sees_a_read_only_card_and_cannot_move_money(
    inbox: Inbox,
) -> None:
    canvas = await inbox.open(STRANGER)
    assert "ch_jane_1" in shown(canvas) and "Read-only" in shown(canvas)
    assert labels(canvas) == []
    # A genuine agent's form, sent (signed) by the unknown teammate: roles are checked again.
    form = await inbox.click(AGENT, await inbox.open(AGENT), "Refund ch_jane_1")
    values = {"f_amount": "20.00", "f_reason_code": "duplicate", "f_reason_text": "x"}
    payload = Inbox.request(STRANGER, JANE) | {
        "component_id": "form_submit", "input_values": values, "current_canvas": form,
    }  # fmt: skip
    refused = await inbox.send(payload)
    assert "nothing was done" in shown(refused)  # drawn for another teammate
    payload["admin"] = Inbox.request(AGENT, JANE)["admin"] | {"email": STRANGER}
    refused = await inbox.send(payload)
    assert "needs the agent" in shown(refused) or "role" in shown(refused)
    assert await refunded(inbox.services, "ch_jane_1") == 0


@pytest.mark.approvals
async def test_tampered_stored_data_is_refused(inbox: Inbox) -> None:
    canvas = await inbox.open(STRANGER)
    agent = await inbox.open(AGENT)
    state = json.loads(canvas["stored_data"]["state"])
    state["b"] = json.loads(agent["stored_data"]["state"])["b"]  # the agent's buttons
    forged = canvas | {
        "stored_data": {"state": json.dumps(state), "seal": canvas["stored_data"]["seal"]}
    }
    payload = Inbox.request(STRANGER, JANE) | {
        "component_id": button(agent, "Refund ch_jane_1")["id"],
        "input_values": {}, "current_canvas": forged,
    }  # fmt: skip
    refused = await inbox.send(payload)
    assert "changed on its way back" in shown(refused)
    assert all(c["type"] != "input" for c in components(refused))


# --- paging and size ---------------------------------------------------------------------


@pytest.mark.storage
async def test_five_thousand_charges_stay_under_64_kb_with_paging(inbox: Inbox) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with inbox.services.db.write() as session:
        session.add(LedgerCustomer(id="cus_big", email="big@example.com", name="Big Spender",
                                   created=start))  # fmt: skip
        await session.flush()
        session.add_all(_charge(i, start) for i in range(5000))
    assert await charge_rows(inbox.services) >= 5000
    canvas = await inbox.open(AGENT, contact="big@example.com")
    assert size(canvas) < 64 * 1024
    first = shown(canvas)
    page = await inbox.click(AGENT, canvas, "Next", contact="big@example.com")
    assert size(page) < 64 * 1024
    rows = [i["title"] for c in components(page) if c["type"] == "list" for i in c["items"]]
    assert len(rows) == 10 and not any(r in first for r in rows)
    further = await inbox.click(AGENT, page, "Next", contact="big@example.com")
    later = [i["title"] for c in components(further) if c["type"] == "list" for i in c["items"]]
    assert later and not set(later) & set(rows)
    back = await inbox.click(AGENT, further, "Previous", contact="big@example.com")
    assert [i["title"] for c in components(back) if c["type"] == "list" for i in c["items"]] == rows
    home = await inbox.click(AGENT, back, "Back to the card", contact="big@example.com")
    assert shown(home) == first


def _charge(i: int, start: datetime) -> LedgerCharge:
    return LedgerCharge(
        id=f"ch_big_{i:05d}", customer_id="cus_big", amount=1999 + i, currency="EUR",
        amount_captured=1999 + i, amount_refunded=0, status="succeeded",
        description=f"order {i} " + "x" * 200, created=start + timedelta(minutes=i),
    )  # fmt: skip


# --- secrets -----------------------------------------------------------------------------


async def test_no_secret_in_canvases_or_logs(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.keys import signing_key

    caplog.set_level(logging.DEBUG)
    canvas = await inbox.open(AGENT)
    form = await inbox.click(AGENT, canvas, "Refund ch_jane_1")
    await inbox.post("initialize", Inbox.request(AGENT, JANE), signature="forged")
    key = signing_key(inbox.services.settings).decode()
    everything = json.dumps([canvas, form]) + caplog.text
    assert SECRET not in everything and key not in everything
