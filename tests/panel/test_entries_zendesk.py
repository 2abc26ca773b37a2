"""Zendesk's signed entry: the ZAF JWT (RS256) POSTed into the sidebar opens a vouched session.

The token is signed by the host page's stand-in for Zendesk with a test RSA key; the
agent's email comes from the Zendesk API emulator, as it would from Zendesk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest

from bot.actors import Role
from bot.panel import session as panel_session
from bot.services import Services
from bot.settings import Settings
from chargedesk_emulators.helpdesk_hosts import HelpdeskHosts, new_rsa_key
from chargedesk_emulators.zendesk import ZendeskEmulator, zendesk_api
from tests.panel.entries_support import (
    ALEX,
    MARIA,
    client_for,
    opened,
    refused,
    session_row,
    sessions,
    with_helpdesk,
)

pytestmark = pytest.mark.storage

ENTRY = "/panel/entry/zendesk?origin=https%3A%2F%2Fchargedesk.zendesk.com&app_guid=g-1"


@pytest.fixture
def zendesk() -> Iterator[ZendeskEmulator]:
    with zendesk_api(subdomain="chargedesk") as api:
        yield api


@pytest.fixture
def hosts() -> HelpdeskHosts:
    return HelpdeskHosts("http://localhost:8000")


@pytest.fixture
def settings(settings: Settings, zendesk: ZendeskEmulator, hosts: HelpdeskHosts) -> Settings:
    return with_helpdesk(
        settings, "zendesk", subdomain="chargedesk", email=zendesk.email,
        api_token=zendesk.api_token, base_url=zendesk.base_url,
        app_public_key=hosts.zaf_public_key, app_audience=hosts.zaf_audience,
    )  # fmt: skip


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(services):
        yield client


@pytest.fixture
def alex(zendesk: ZendeskEmulator) -> int:
    return zendesk.agent(ALEX, "Alex Agent", locale="de")


async def enter(web: httpx.AsyncClient, token: str | None) -> httpx.Response:
    data = {"token": token} if token is not None else {"other": "x"}
    return await web.post(ENTRY, data=data)


async def test_a_token_zendesk_signed_opens_a_session_zendesk_vouches_for(
    web, services, hosts, alex
) -> None:
    answer = await enter(web, hosts.zaf_token(alex))
    session_id = opened(answer)
    # No ticket in a ZAF token: the loader asks the app framework, with what it needs.
    assert answer.headers["location"].endswith(
        "/zendesk?origin=https%3A%2F%2Fchargedesk.zendesk.com&app_guid=g-1"
    )
    row = await session_row(services, session_id)
    assert (row.helpdesk, row.agent_email, row.agent_name) == ("zendesk", ALEX, "Alex Agent")
    assert row.vouched and row.confirmed_at is None and row.language == "de"
    live = await panel_session.load(services, session_id)
    actor = panel_session.actor(services.settings, live) if live else None
    assert actor is not None and actor.has(Role.agent) and not actor.has(Role.manager)


async def test_the_agents_email_comes_from_zendesk_not_from_the_token(
    web, services, hosts, zendesk
) -> None:
    maria = zendesk.agent(MARIA, "Maria Manager")
    session_id = opened(await enter(web, hosts.zaf_token(maria)))
    live = await panel_session.load(services, session_id)
    assert live is not None and panel_session.actor(services.settings, live).has(Role.manager)


async def test_a_replayed_token_opens_nothing(web, services, hosts, alex) -> None:
    token = hosts.zaf_token(alex)
    opened(await enter(web, token))
    refused(await enter(web, token), "already used")
    assert await sessions(services) == 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("another key", "forged token"),
        ("HS256 with the public key", "forged token"),
        ("alg none", "forged token"),
        ("wrong audience", "wrong audience"),
        ("wrong issuer", "wrong issuer"),
        ("expired", "expired token"),
        ("not yet valid", "not valid yet"),
        ("lives an hour", "lives too long"),
        ("no sub", "no sub claim"),
        ("no exp", "no exp claim"),
        ("sub names nobody", "sub names no Zendesk user"),
        ("payload changed", "forged token"),
    ],
)
async def test_a_token_zendesk_did_not_sign_as_it_signs_is_refused(
    web, services, hosts, alex, tamper, reason
) -> None:
    now = time.time()
    tokens = {
        "another key": lambda: hosts.zaf_token(alex, key=new_rsa_key()),
        "HS256 with the public key": lambda: hosts.zaf_token(alex, algorithm="HS256"),
        "alg none": lambda: jwt.encode(
            {
                "iss": "chargedesk.zendesk.com",
                "aud": hosts.zaf_audience,
                "sub": str(alex),
                "iat": int(now),
                "exp": int(now) + 300,
            },
            None,
            algorithm="none",
        ),
        "wrong audience": lambda: hosts.zaf_token(
            alex, audience="https://chargedesk.zendesk.com/api/v2/apps/installations/9.json"
        ),
        "wrong issuer": lambda: hosts.zaf_token(alex, issuer="evil.zendesk.com"),
        "expired": lambda: hosts.zaf_token(alex, issued_at=now - 400),
        "not yet valid": lambda: hosts.zaf_token(alex, issued_at=now + 600),
        "lives an hour": lambda: hosts.zaf_token(alex, lifetime=3600),
        "no sub": lambda: hosts.zaf_token(alex, drop=("sub",)),
        "no exp": lambda: hosts.zaf_token(alex, drop=("exp",)),
        "sub names nobody": lambda: _with_sub(hosts, "user:nobody"),
        "payload changed": lambda: _swap_payload(hosts.zaf_token(alex), hosts.zaf_token(alex + 1)),
    }
    refused(await enter(web, tokens[tamper]()), reason)
    assert await sessions(services) == 0


def _with_sub(hosts: HelpdeskHosts, sub: str) -> str:
    now = int(time.time())
    claims = {"iss": "chargedesk.zendesk.com", "aud": hosts.zaf_audience, "sub": sub,
              "iat": now, "exp": now + 300}  # fmt: skip
    return jwt.encode(claims, hosts.zaf_key, algorithm="RS256")


def _swap_payload(token: str, other: str) -> str:
    """`token`'s header and signature around `other`'s claims."""
    head, _, signature = token.split(".")
    return ".".join([head, other.split(".")[1], signature])


@pytest.mark.parametrize(
    "token",
    [None, "", "not-a-jwt", "a.b.c", "x" * 9000],
    ids=["no field", "empty", "junk", "dots", "huge"],
)
async def test_a_malformed_entry_is_refused(web, services, token) -> None:
    refused(await enter(web, token), "malformed")
    assert await sessions(services) == 0


async def test_a_json_body_is_not_a_zendesk_entry(web, hosts, alex) -> None:
    answer = await web.post(ENTRY, json={"token": hosts.zaf_token(alex)})
    refused(answer, "Zendesk posts a form")


async def test_an_agent_zendesk_does_not_know_is_refused(web, hosts, zendesk) -> None:
    refused(await enter(web, hosts.zaf_token(424242)), "Zendesk could not tell who you are")


async def test_a_zendesk_user_without_email_is_refused(web, hosts, zendesk) -> None:
    nameless = zendesk.agent("", "No Email")
    refused(await enter(web, hosts.zaf_token(nameless)), "no email")


@pytest.mark.parametrize("missing", ["app_public_key", "app_audience", "api_token"])
async def test_without_its_settings_zendesk_entry_refuses_everything(
    services, hosts, alex, missing
) -> None:
    section = services.settings.helpdesk.zendesk.model_copy(update={missing: None})
    settings = services.settings.model_copy(
        update={"helpdesk": services.settings.helpdesk.model_copy(update={"zendesk": section})}
    )
    from dataclasses import replace

    async for web in client_for(replace(services, settings=settings)):
        refused(await enter(web, hosts.zaf_token(alex)), "not configured")


async def test_the_public_key_can_be_a_file(services, hosts, alex, tmp_path) -> None:
    from dataclasses import replace

    pem = tmp_path / "zendesk.pem"
    pem.write_text(hosts.zaf_public_key)
    section = services.settings.helpdesk.zendesk.model_copy(
        update={"app_public_key": None, "app_public_key_file": pem}
    )
    settings = services.settings.model_copy(
        update={"helpdesk": services.settings.helpdesk.model_copy(update={"zendesk": section})}
    )
    async for web in client_for(replace(services, settings=settings)):
        opened(await enter(web, hosts.zaf_token(alex)))


async def test_markup_in_the_agents_zendesk_name_reaches_the_page_as_text(
    web, hosts, zendesk
) -> None:
    evil = zendesk.agent(ALEX, '<img src=x onerror="alert(1)">')
    answer = await enter(web, hosts.zaf_token(evil))
    page = await web.get(f"/panel/s/{opened(answer)}/search")  # the header names the agent
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text


async def test_tokens_never_reach_the_logs(web, hosts, alex, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    good, forged = hosts.zaf_token(alex), hosts.zaf_token(alex, key=new_rsa_key())
    opened(await enter(web, good))
    refused(await enter(web, good), "already used")
    refused(await enter(web, forged), "forged")
    # The bot's own records (the test's HTTP client logs the URLs it asks for itself).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "panel entry from zendesk refused" in logged
    for token in (good, forged):
        for part in token.split("."):
            assert part not in logged


async def test_a_client_refused_too_often_is_turned_away_before_any_check(web, hosts, alex) -> None:
    for _ in range(30):
        refused(await enter(web, "junk"), "malformed")
    answer = await enter(web, hosts.zaf_token(alex))
    assert answer.status_code == 429 and "too many" in answer.text


def test_the_zendesk_app_package_asks_for_signed_urls_into_the_entry() -> None:
    import json
    import struct
    from pathlib import Path

    app = Path(__file__).resolve().parents[2] / "apps" / "zendesk"
    manifest = json.loads((app / "manifest.json").read_text())
    assert manifest["signedUrls"] is True and manifest["frameworkVersion"] == "2.0"
    sidebar = manifest["location"]["support"]["ticket_sidebar"]["url"]
    assert sidebar.startswith("https://") and sidebar.endswith("/panel/entry/zendesk")
    english = json.loads((app / "translations" / "en.json").read_text())
    assert english["app"]["name"] == manifest["name"]
    for name, size in (("logo.png", 320), ("logo-small.png", 128)):
        head = (app / "assets" / name).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (
            size,
            size,
        )
