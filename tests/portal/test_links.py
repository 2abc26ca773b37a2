"""Billing-page links: a genuine one opens its customer's pages; anything else opens nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.billing_links import issue_link, token
from bot.keys import signing_key
from bot.portal.app import LINK_FAILURES_PER_HOUR
from bot.store.tables import AuditEntry, PortalGrant
from tests.portal.conftest import JANE, JOHN, open_as, path_of, session_cookie

pytestmark = pytest.mark.storage


async def test_a_link_opens_its_customers_history_and_only_theirs(client, services):
    opened = await open_as(client, services, JANE)
    assert session_cookie(opened) is not None

    page = await client.get("/portal/")

    assert page.status_code == 200
    html = page.text
    assert "Jane Doe" in html
    for jane in (
        "JANE-0001",
        "JANE-0003",
        "Onboarding workshop (2 hours)",
        "/portal/pdf/invoice/ledger/in_jane_paid",
    ):
        assert jane in html
    for john in (
        "John Smith",
        JOHN,
        "JOHN-0001",
        "in_john_paid",
        "ch_john_2",
        "cus_john",
        "Team plan",
    ):
        assert john not in html
    # John's documents do not open with Jane's session, whatever the address says.
    for other in (
        "/portal/pdf/invoice/ledger/in_john_paid",
        "/portal/pdf/receipt/ledger/ch_john_2",
        "/portal/pdf/invoice/ledger/in_yuki_paid",
    ):
        refused = await client.get(other)
        assert refused.status_code == 404, other
        assert "%PDF" not in refused.text


async def test_the_token_leaves_the_address_and_no_email_is_in_any_url(client, services):
    url = await issue_link(services, JANE, issued_by="test")
    assert "jane" not in url.lower() and "@" not in url
    opened = await client.get(path_of(url))
    assert (opened.status_code, opened.headers["location"]) == (303, "/portal/")
    page = await client.get("/portal/")
    assert "@" not in " ".join(_links(page.text))


def _links(html: str) -> list[str]:
    import re

    return re.findall(r'(?:href|action)="([^"]*)"', html)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), id="forged-signature"
        ),
        # One character of the grant ID changed (never to the one it already was).
        pytest.param(lambda t: t[:3] + ("y" if t[3] == "x" else "x") + t[4:], id="altered-grant"),
        pytest.param(
            lambda t: (lambda g, e, s: f"{g}.{int(e) + 86400}.{s}")(*t.split(".")),
            id="extended-expiry",
        ),
        pytest.param(lambda t: t[: len(t) // 2], id="truncated"),
        pytest.param(lambda t: t.split(".")[0], id="grant-only"),
        pytest.param(lambda t: "", id="empty"),
    ],
)
async def test_a_tampered_link_is_refused_and_opens_no_session(client, services, tamper):
    url = await issue_link(services, JANE, issued_by="test")
    genuine = url.rsplit("/", 1)[1]

    answer = await client.get(f"/portal/l/{tamper(genuine)}")

    assert answer.status_code in (403, 404)  # an empty token is no route at all
    assert session_cookie(answer) is None
    assert "Jane" not in answer.text
    if answer.status_code == 403:
        assert "This link is not valid" in answer.text
        assert 'href="/portal/signin"' in answer.text
    assert (await client.get("/portal/")).headers["location"].startswith("/portal/signin")


async def test_an_expired_link_leads_to_sign_in(client, services):
    url = await issue_link(services, JANE, issued_by="test")
    grant = url.rsplit("/", 1)[1].split(".")[0]
    expired = token(signing_key(services.settings), grant, datetime.now(UTC) - timedelta(minutes=1))

    answer = await client.get(f"/portal/l/{expired}")

    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/portal/signin?reason=expired",
    )
    assert session_cookie(answer) is None
    page = await client.get(answer.headers["location"])
    assert "This link has expired" in page.text and 'name="email"' in page.text


async def test_a_revoked_link_is_refused_and_ends_the_sessions_it_opened(client, services):
    url = await issue_link(services, JANE, issued_by="test")
    assert (await client.get(path_of(url))).status_code == 303
    assert (await client.get("/portal/")).status_code == 200

    async with services.db.write() as session:
        await session.execute(update(PortalGrant).values(revoked_at=datetime.now(UTC)))

    ended = await client.get("/portal/")
    assert (ended.status_code, ended.headers["location"]) == (
        303,
        "/portal/signin?reason=session_ended",
    )
    again = await client.get(path_of(url))
    assert again.status_code == 403 and "withdrawn" in again.text


async def test_a_new_link_replaces_the_previous_customers_session(client, services):
    await open_as(client, services, JOHN)
    await open_as(client, services, JANE)
    page = await client.get("/portal/")
    assert "Jane Doe" in page.text and "John Smith" not in page.text


async def test_opening_a_link_is_audited(client, services):
    await open_as(client, services, JANE)
    async with services.db.read() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "portal_signed_in")
        )
    assert entry is not None
    assert (entry.actor_platform, entry.actor_name, entry.outcome) == ("portal", JANE, "signed_in")
    assert entry.detail["via"] == "link"
    assert JANE not in entry.actor_id  # the ID is a keyed hash, not the address


async def test_too_many_refused_links_from_one_address_stop_even_genuine_ones(client, services):
    for _ in range(LINK_FAILURES_PER_HOUR):
        assert (await client.get("/portal/l/pg_guess.9999999999.AAAA")).status_code == 403
    url = await issue_link(services, JANE, issued_by="test")

    answer = await client.get(path_of(url))

    assert answer.status_code == 429
    assert "Too many attempts" in answer.text
    assert session_cookie(answer) is None
