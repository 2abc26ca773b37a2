"""Billing-page fixtures: the ASGI app on the test's services, a client, signed-in customers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.billing_links import issue_link
from bot.portal.app import COOKIE
from bot.services import Services
from bot.web import create_app

BASE = "http://localhost:8000"  # the default portal.base_url
JANE = "jane.doe@example.com"
JOHN = "john.smith@example.com"


@pytest.fixture
async def app(services: Services) -> AsyncIterator[Starlette]:
    application = create_app(services.settings, services)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


def path_of(url: str) -> str:
    """The part of a link after the host: what a client inside the app requests."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


async def open_as(client: httpx.AsyncClient, services: Services, email: str) -> httpx.Response:
    """Open a fresh billing link for `email`; the client keeps the session cookie."""
    url = await issue_link(services, email, issued_by="test")
    answer = await client.get(path_of(url))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/portal/"
    return answer


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def form_page(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, str]:
    """A page with a form, and its CSRF token."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return page, csrf_of(page.text)


async def post(
    client: httpx.AsyncClient, path: str, token: str | None, **fields: Any
) -> httpx.Response:
    data = {"csrf": token, **fields} if token is not None else dict(fields)
    return await client.post(path, data=data)


def session_cookie(answer: httpx.Response) -> str | None:
    """The Set-Cookie header of the billing-page session, if the answer sets one."""
    for header in answer.headers.get_list("set-cookie"):
        if header.startswith(f"{COOKIE}="):
            return header
    return None
