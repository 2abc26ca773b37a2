"""Help Scout's dynamic app: signed requests in, an escaped billing sidebar out (demo ledger).

The agent viewing (`user`) is a person with roles: listed agents see the commands to copy,
anyone else the card only, with a line saying what to configure.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pydantic import SecretStr

from bot.gateways.base import Capability, ErrorCode, Gateway, GatewayError, LookupQuery
from bot.gateways.registry import Gateways
from bot.models import GatewayProfile
from bot.services import Services
from bot.settings import HelpScoutSettings, Settings
from bot.web import create_app
from chargedesk_emulators.helpscout import HelpScoutEmulator, helpscout_api

pytestmark = pytest.mark.storage

JANE = "jane.doe@example.com"
JOHN = "john.smith@example.com"
PATH = "/helpdesk/helpscout/sidebar"
ALEX = "alex.agent@example.com"  # listed in [helpdesk.helpscout] agents below
MARIA = "maria.manager@example.com"  # listed in managers
NOBODY = "new.hire@example.com"  # listed nowhere
ACTION_LINE = re.compile(r"<code>/billing (refund|cancel|capture|void) ")


@pytest.fixture
def helpscout() -> Iterator[HelpScoutEmulator]:
    with helpscout_api() as api:
        yield api


@pytest.fixture
def settings(settings: Settings, helpscout: HelpScoutEmulator) -> Settings:
    section = HelpScoutSettings(
        app_id=SecretStr(helpscout.app_id),
        app_secret=SecretStr(helpscout.app_secret),
        secret_key=SecretStr(helpscout.secret_key),
        base_url=helpscout.base_url,
        agents=[ALEX],
        managers=[MARIA],
    )
    return settings.model_copy(
        update={"helpdesk": settings.helpdesk.model_copy(update={"helpscout": section})}
    )


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            yield client


async def sidebar(
    web: httpx.AsyncClient,
    helpscout: HelpScoutEmulator,
    customer: dict,
    *,
    agent: str | None = ALEX,
    **user: object,
) -> httpx.Response:
    """The emulator's signed sidebar request, its `user` carrying `agent` as their email
    (None: the emulator's user, who has none) and any other `user` members given."""
    body, headers = helpscout.sidebar_request(customer)
    if agent is not None or user:
        payload = json.loads(body)
        payload["user"].update({"email": agent, **user} if agent is not None else user)
        body = json.dumps(payload).encode()
        headers = helpscout.headers(body)
    return await web.post(PATH, content=body, headers=headers)


async def test_the_sidebar_shows_the_requesters_billing_with_exact_amounts(web, helpscout) -> None:
    answer = await sidebar(
        web, helpscout, {"id": 1, "fname": "Jane", "email": JANE, "emails": [JANE]}
    )
    assert answer.status_code == 200
    page = answer.json()["html"]
    assert "verified (the conversation's email)" in page
    for shown in (
        "ch_jane_1",
        "€120.00",
        "ch_jane_2",
        "€49.00",
        "€19.00",
        "dp_jane_1",
        "sub_jane_pro",
    ):
        assert shown in page, shown
    assert "<code>/billing refund ledger:ch_jane_1 reason: …</code>" in page
    assert "not verified" not in page


async def test_other_emails_of_the_customer_are_marked_not_verified(web, helpscout) -> None:
    customer = {"id": 2, "email": JANE, "emails": [JANE, JOHN, "nobody@example.com"]}
    page = (await sidebar(web, helpscout, customer)).json()["html"]
    jane, john, nobody = page.split("<hr>")
    assert "verified (the conversation" in jane and "not verified" not in jane
    assert JOHN in john and "not verified" in john and "$120.00" in john
    assert "not verified" in nobody and "No billing customer found" in nobody


async def test_a_customer_without_email_gets_a_plain_line(web, helpscout) -> None:
    page = (await sidebar(web, helpscout, {"id": 3, "email": None, "emails": []})).json()["html"]
    assert page == "<p>ChargeDesk: this customer has no email to look up.</p>"


async def test_markup_in_what_customers_control_comes_out_as_text(web, helpscout, services) -> None:
    evil = '"><img src=x onerror=alert(1)>@example.com'
    page = (await sidebar(web, helpscout, {"id": 4, "email": evil, "emails": [evil]})).json()[
        "html"
    ]
    assert "<img" not in page and "onerror=alert(1)&gt;" in page
    # A ledger customer's own name and descriptions are escaped the same way.
    from bot.store.tables import LedgerCustomer

    async with services.db.write() as session:
        customer = await session.get(LedgerCustomer, "cus_jane")
        customer.name = "<script>steal()</script> Jane"
    page = (await sidebar(web, helpscout, {"id": 5, "email": JANE})).json()["html"]
    assert "<script>" not in page and "&lt;script&gt;steal()&lt;/script&gt; Jane" in page


@pytest.mark.parametrize("tamper", ["unsigned", "wrong secret", "body changed"])
async def test_a_request_not_signed_by_help_scout_is_refused(web, helpscout, tamper) -> None:
    body, headers = helpscout.sidebar_request({"id": 1, "email": JANE})
    if tamper == "unsigned":
        del headers["X-HelpScout-Signature"]
    elif tamper == "wrong secret":
        body, headers = helpscout.sidebar_request({"id": 1, "email": JANE}, secret_key="not-ours")
    else:
        body = body.replace(JANE.encode(), JOHN.encode())
    answer = await web.post(PATH, content=body, headers=headers)
    assert answer.status_code == 401
    assert "html" not in answer.json() and "jane" not in answer.text.lower()


async def test_the_sidebar_never_carries_a_secret(web, helpscout, services) -> None:
    page = (await sidebar(web, helpscout, {"id": 1, "email": JANE, "emails": [JANE, JOHN]})).text
    secrets = [helpscout.secret_key, helpscout.app_secret, helpscout.app_id]
    secrets.append(services.settings.portal.secret.get_secret_value())
    assert all(secret not in page for secret in secrets)
    assert "/portal" not in page and "token" not in page.lower()


async def test_the_sidebar_is_small(web, helpscout) -> None:
    customer = {"id": 1, "email": JANE, "emails": [JANE, JOHN, "yuki.tanaka@example.com", "x@y.z"]}
    answer = await sidebar(web, helpscout, customer)
    assert len(json.loads(answer.text)["html"]) < 12_000
    assert answer.json()["html"].count("<hr>") == 2  # at most three addresses are looked up


# --- the agent's roles decide what the sidebar offers ----------------------------------------


async def test_a_listed_agent_sees_every_money_moving_command(web, helpscout) -> None:
    page = (await sidebar(web, helpscout, {"id": 1, "email": JANE})).json()["html"]
    assert {m.group(1) for m in ACTION_LINE.finditer(page)} == {
        "refund", "cancel", "capture", "void",
    }  # fmt: skip
    assert "Read-only" not in page


@pytest.mark.parametrize(
    "spelling", ["MARIA.Manager@Example.com", "ｍａｒｉａ.manager@example.com"]
)
async def test_a_manager_in_any_spelling_of_their_email_sees_them_too(
    web, helpscout, spelling
) -> None:
    page = (await sidebar(web, helpscout, {"id": 1, "email": JANE}, agent=spelling)).json()["html"]
    assert "<code>/billing refund ledger:ch_jane_1 reason: …</code>" in page
    assert "Read-only" not in page


@pytest.mark.parametrize("agent", [NOBODY, None], ids=["unlisted email", "no email"])
async def test_an_unknown_agent_sees_the_card_only(web, helpscout, agent) -> None:
    page = (await sidebar(web, helpscout, {"id": 1, "email": JANE}, agent=agent)).json()["html"]
    for shown in ("ch_jane_1", "€120.00", "sub_jane_pro", "dp_jane_1"):
        assert shown in page, shown  # the same card
    assert not ACTION_LINE.search(page) and "/billing" not in page
    assert page.count("Read-only") == 1
    assert "<code>[helpdesk.helpscout] agents</code>" in page
    assert (NOBODY in page) == (agent is not None)  # the email we saw, so they can ask for it


async def test_a_request_without_a_user_gets_the_card_only(web, helpscout) -> None:
    body, _ = helpscout.sidebar_request({"id": 1, "email": JANE})
    payload = json.loads(body)
    del payload["user"]
    body = json.dumps(payload).encode()
    page = (await web.post(PATH, content=body, headers=helpscout.headers(body))).json()["html"]
    assert "ch_jane_1" in page and not ACTION_LINE.search(page) and "Read-only" in page


async def test_markup_in_the_agents_email_and_name_comes_out_as_text(web, helpscout) -> None:
    evil = "<img src=x onerror=alert(1)>@example.com"
    answer = await sidebar(
        web, helpscout, {"id": 1, "email": JANE}, agent=evil, fname="<script>x()</script>"
    )
    page = answer.json()["html"]
    assert "<img" not in page and "<script" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;@example.com" in page
    assert not ACTION_LINE.search(page)


@pytest.mark.parametrize("tamper", ["unsigned", "wrong secret", "body changed"])
async def test_a_forged_request_names_no_agent(web, helpscout, monkeypatch, tamper) -> None:
    from bot.helpdesk.helpscout import sidebar as module

    named: list[tuple] = []
    monkeypatch.setattr(module, "helpdesk_actor", lambda *a, **k: named.append(a))
    body, _ = helpscout.sidebar_request({"id": 1, "email": JANE})
    payload = json.loads(body)
    payload["user"]["email"] = ALEX
    body = json.dumps(payload).encode()
    headers = helpscout.headers(body)
    if tamper == "unsigned":
        del headers["X-HelpScout-Signature"]
    elif tamper == "wrong secret":
        headers = helpscout.headers(body, secret_key="not-ours")
    else:
        body = body.replace(ALEX.encode(), MARIA.encode())
    answer = await web.post(PATH, content=body, headers=headers)
    assert answer.status_code == 401 and named == []


class _Down(Gateway):
    """A gateway that could search by email but does not answer."""

    name = "stripe"
    capabilities = frozenset({Capability.lookup})

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        raise GatewayError(ErrorCode.unavailable, "Stripe is unavailable", gateway=self.name)


async def test_a_gateway_that_did_not_answer_is_never_shown_as_no_customer_found(
    web, helpscout, services
) -> None:
    services.gateways = Gateways([_Down()], timeout=5)
    page = (await sidebar(web, helpscout, {"id": 3, "email": "nobody@example.com"})).json()
    assert "No billing customer found" not in page["html"]
    assert "Could not look this customer up (stripe: Stripe is unavailable)" in page["html"]
