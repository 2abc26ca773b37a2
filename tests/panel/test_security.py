"""What guards the panel: who may frame it, its headers, CSRF and origin on every POST, sealed
buttons, escaping of every datum, and no customer data in addresses."""

from __future__ import annotations

import base64
import json
import logging
import re
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select

from bot.panel.security import allow, content_policy, frame_ancestors
from bot.settings import (
    FreshdeskSettings,
    FrontSettings,
    HelpdeskSettings,
    PanelSettings,
    Settings,
    ZendeskSettings,
)
from bot.store.tables import ApprovalRow, LedgerCharge, LedgerCustomer
from tests.conftest import refunded
from tests.panel.conftest import AGENT, JANE, Panel, buttons, forms, text, traces

pytestmark = pytest.mark.storage


def test_frame_ancestors_are_exactly_the_helpdesks_configured(settings: Settings):
    assert frame_ancestors(settings) == []
    assert "frame-ancestors 'none'" in content_policy(settings)
    configured = settings.model_copy(update={
        "helpdesk": HelpdeskSettings(
            zendesk=ZendeskSettings(
                subdomain="Acme", email="bot@acme.example", api_token=SecretStr("t"),
                app_public_key="-----BEGIN PUBLIC KEY-----", app_audience="https://acme.zendesk.com/x",
            ),
            freshdesk=FreshdeskSettings(domain="acme.freshdesk.com", panel_secret=SecretStr("s" * 32)),
            front=FrontSettings(plugin_auth_secret=SecretStr("s")),
        ),
        "panel": PanelSettings(frame_ancestors=["http://127.0.0.1:8123"]),
    })  # fmt: skip
    assert frame_ancestors(configured) == [
        "https://acme.zendesk.com",
        "https://acme.freshdesk.com",
        "https://d3h0owdjgzys62.cloudfront.net",  # the Freshworks app's own frame
        "https://*.frontapp.com",
        "https://*.frontapplication.com",
        "'self'",  # Front's plugin page (ours) frames the panel
        "http://127.0.0.1:8123",
    ]
    policy = content_policy(configured)
    assert (
        "frame-ancestors https://acme.zendesk.com https://acme.freshdesk.com "
        "https://d3h0owdjgzys62.cloudfront.net https://*.frontapp.com "
        "https://*.frontapplication.com 'self' http://127.0.0.1:8123;" in policy
    )
    assert "script-src" not in policy and "default-src 'none'" in policy


def test_a_helpdesk_whose_panel_entry_is_not_configured_frames_nothing(settings: Settings):
    # Notes configured, no panel entry: Zendesk without its app key, Freshdesk without
    # panel_secret, Front without plugin_auth_secret.
    notes_only = settings.model_copy(update={
        "helpdesk": HelpdeskSettings(
            zendesk=ZendeskSettings(subdomain="acme", email="bot@acme.example",
                                    api_token=SecretStr("t")),
            freshdesk=FreshdeskSettings(domain="acme.freshdesk.com", api_key=SecretStr("k")),
            front=FrontSettings(api_token=SecretStr("t"), app_secret=SecretStr("a")),
        )
    })  # fmt: skip
    assert frame_ancestors(notes_only) == []
    assert "frame-ancestors 'none'" in content_policy(notes_only)


def test_the_freshworks_app_frame_origin_can_be_set_and_must_be_an_https_origin(
    settings: Settings, caplog: pytest.LogCaptureFixture
):
    regional = FreshdeskSettings(
        domain="acme.freshdesk.com", panel_secret=SecretStr("s" * 32),
        app_frame_origins=["https://apps.eu.example.net"],
    )  # fmt: skip
    eu = settings.model_copy(update={"helpdesk": HelpdeskSettings(freshdesk=regional)})
    assert frame_ancestors(eu) == ["https://acme.freshdesk.com", "https://apps.eu.example.net"]
    for bad in ("http://apps.example.net", "https://apps.example.net/x", "*", "https://a b"):
        with pytest.raises(ValidationError, match="is not an origin"):
            FreshdeskSettings(app_frame_origins=[bad])
    # A panel secret without the helpdesk's domain frames nothing, and says why at start.
    no_domain = settings.model_copy(update={
        "helpdesk": HelpdeskSettings(freshdesk=FreshdeskSettings(panel_secret=SecretStr("s" * 32)))
    })  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert frame_ancestors(no_domain) == []
    assert "Freshdesk cannot frame the panel" in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "https://static.example/sdk.js; script-src *",
        "https://static.example/sdk.js 'unsafe-inline'",
        "javascript:alert(1)",
        "http://static.example/sdk.js",  # plain http, off this machine
        "https://static.example/sdk.js?v=1",
        "data:text/javascript,alert(1)",
    ],
)
def test_a_helpdesk_sdk_address_must_be_a_plain_script_url(url: str):
    with pytest.raises(ValidationError, match="is not a script address"):
        ZendeskSettings(zaf_sdk_url=url)
    with pytest.raises(ValidationError, match="is not a script address"):
        FrontSettings(plugin_sdk_url=url)


def test_a_page_may_allow_only_sources_that_cannot_widen_the_policy():
    from starlette.requests import Request

    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    for bad in ("*", "'unsafe-inline'", "https://x.example; script-src *", "data:", "'self' *"):
        with pytest.raises(ValueError, match="not a source"):
            allow(request, scripts=(bad,))
    allow(request, scripts=("'self'", "https://x.example/sdk.js"), frames=("'self'",))


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example; script-src *",
        "https://evil.example/path",
        "*",
        "evil.example",
        "javascript:alert(1)",
        "https://evil.example 'unsafe-inline'",
    ],
)
def test_an_extra_frame_ancestor_must_be_a_bare_origin(origin: str):
    with pytest.raises(ValidationError, match="is not an origin"):
        PanelSettings(frame_ancestors=[origin])


async def test_every_page_says_no_store_no_referrer_and_no_script(panel: Panel):
    alex = await panel.enter(AGENT)
    for page in ("card", "search", "approvals"):
        answer = await alex.get(page)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"
        policy = answer.headers["content-security-policy"]
        assert (
            "frame-ancestors https://*.frontapp.com https://*.frontapplication.com 'self';"
            in policy
        )
        assert "script-src" not in policy
        assert "x-frame-options" not in answer.headers  # it would forbid every frame
        assert "<script" not in answer.text


async def _refund_form(panel: Panel) -> tuple:
    alex = await panel.enter(AGENT)
    card = (await alex.get("card")).text
    form = await alex.click(card, "Refund ch_jane_1")
    assert form.status_code == 200
    return alex, form.text


async def _nothing_changed(panel: Panel) -> None:
    assert await refunded(panel.services, "ch_jane_1") == 0
    async with panel.services.db.read() as db:
        assert await db.scalar(select(func.count()).select_from(ApprovalRow)) == 0
    assert await traces(panel.services) == {}


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(panel: Panel):
    alex, page = await _refund_form(panel)
    [form] = [f for f in forms(page) if f.action.endswith("/submit")]
    data = {k: v for k, v in form.fields.items() if k != "csrf"}
    data |= {"f_amount": "20", "f_reason_text": "duplicate"}

    answer = await alex.post(form.action, data)

    assert answer.status_code == 403 and "nothing was done" in text(answer.text)
    await _nothing_changed(panel)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://acme.zendesk.com"},  # the helpdesk frames us; it does not post for us
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "null"},
    ],
)
async def test_a_post_from_another_site_is_refused_even_with_the_token(panel: Panel, headers):
    alex, page = await _refund_form(panel)
    [form] = [f for f in forms(page) if f.action.endswith("/submit")]
    data = form.fields | {"f_amount": "20", "f_reason_text": "duplicate"}

    answer = await alex.post(form.action, data, **headers)

    assert answer.status_code == 403
    await _nothing_changed(panel)


async def test_our_own_page_posting_with_origin_null_and_same_origin_is_accepted(panel: Panel):
    alex, page = await _refund_form(panel)
    [form] = [f for f in forms(page) if f.action.endswith("/submit")]
    data = form.fields | {"f_amount": "20", "f_reason_code": "duplicate", "f_reason_text": "twice"}
    # What Chromium sends for a form of ours under `Referrer-Policy: no-referrer`.
    answer = await alex.post(form.action, data, Origin="null", **{"Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 200
    assert await refunded(panel.services, "ch_jane_1") == 2000


async def test_another_sessions_token_is_refused(panel: Panel):
    alex, page = await _refund_form(panel)
    other = await panel.enter(AGENT)
    their = next(f for f in forms((await other.get("card")).text))
    [form] = [f for f in forms(page) if f.action.endswith("/submit")]
    data = form.fields | {"csrf": their.fields["csrf"], "f_amount": "20", "f_reason_text": "x"}
    assert (await alex.post(form.action, data)).status_code == 403
    await _nothing_changed(panel)


async def test_a_changed_button_runs_nothing(panel: Panel):
    alex = await panel.enter(AGENT)
    card = (await alex.get("card")).text
    button = next(f for f in forms(card) if f.button == "Email receipt ch_jane_1")
    packed, mac = button.fields["a"].split(".")
    # Another command in the same envelope, the old seal kept.
    state = json.loads(base64.urlsafe_b64decode(packed))
    state["run"] = "refund ledger:ch_jane_1 20 reason: duplicate forged"
    changed = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
    forged = button.fields | {"a": f"{changed}.{mac}"}

    answer = await alex.post(button.action, forged)

    assert "changed on its way back: nothing was done" in text(answer.text)
    assert await traces(panel.services) == {}
    assert await refunded(panel.services, "ch_jane_1") == 0
    assert "Receipt" not in text(answer.text)


async def test_a_button_drawn_for_another_session_runs_nothing(panel: Panel):
    alex = await panel.enter(AGENT)
    mallory_seen = (await alex.get("card")).text
    stolen = next(f for f in forms(mallory_seen) if f.button == "Email receipt ch_jane_1")
    other = await panel.enter(AGENT, ticket="777")
    own = next(f for f in forms((await other.get("card")).text))

    answer = await other.post(
        other.root + "act", {"csrf": own.fields["csrf"], "a": stolen.fields["a"]}
    )

    assert "nothing was done" in text(answer.text)
    assert await traces(panel.services, "777") == {}


async def test_an_unreadable_form_is_refused_with_a_page(panel: Panel):
    alex = await panel.enter(AGENT)
    answer = await alex.web.post(
        alex.root + "act", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and "could not be read" in text(answer.text)
    big = await alex.web.post(alex.root + "act", data={"csrf": "x", "a": "y" * 20_000})
    assert big.status_code == 400


HOSTILE_NAME = '<script>alert("n")</script><img src=x onerror=alert(1)>'
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
HOSTILE_EMAIL = '"><svg onload=alert(1)>@evil.example'


async def test_html_in_customer_data_is_shown_as_text(panel: Panel):
    async with panel.services.db.write() as db:
        db.add(LedgerCustomer(id="cus_evil", email=HOSTILE_EMAIL.lower(), name=HOSTILE_NAME,
                              created=WHEN))  # fmt: skip
        await db.flush()
        db.add(LedgerCharge(
            id="ch_evil", customer_id="cus_evil", amount=1000, currency="EUR", amount_captured=1000,
            status="succeeded", description='</td><b onmouseover="x">bold</b>', created=WHEN,
        ))  # fmt: skip
    alex = await panel.enter(AGENT, requester=None)
    page = (await alex.get("card", id="cus_evil")).text

    assert "<script" not in page and "<svg" not in page and "<img" not in page and "<b " not in page
    assert "&lt;script&gt;alert(&#34;n&#34;)&lt;/script&gt;" in page
    assert "&lt;/td&gt;&lt;b onmouseover=&#34;x&#34;&gt;bold&lt;/b&gt;" in page
    assert "Not verified" in text(page)


async def test_customer_data_stays_out_of_every_address(panel: Panel):
    alex = await panel.enter(AGENT)
    pages = [(await alex.get(p)).text for p in ("card", "search", "approvals")]
    search = next(f for f in forms(pages[1]) if f.action.endswith("/search"))
    found = await alex.post(search.action, search.fields | {"q": JANE})
    assert found.status_code == 303
    assert found.headers["location"] == alex.root + "card?id=cus_jane"
    for page in pages:
        for address in re.findall(r'(?:href|action)="([^"]*)"', page):
            assert "@" not in address and "jane" not in address.lower(), address
    assert all(JANE not in str(r.url) for r in alex.pages)
    assert [b for b in buttons(pages[0]) if "@" in b] == []
