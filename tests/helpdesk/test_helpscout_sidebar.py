"""Help Scout's dynamic app: signed requests in, an escaped billing sidebar out (demo ledger)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pydantic import SecretStr

from bot.services import Services
from bot.settings import HelpScoutSettings, Settings
from bot.web import create_app
from chargedesk_emulators.helpscout import HelpScoutEmulator, helpscout_api

pytestmark = pytest.mark.storage

JANE = "jane.doe@example.com"
JOHN = "john.smith@example.com"
PATH = "/helpdesk/helpscout/sidebar"


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
    web: httpx.AsyncClient, helpscout: HelpScoutEmulator, customer: dict, **signing: str
) -> httpx.Response:
    body, headers = helpscout.sidebar_request(customer, **signing)
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
