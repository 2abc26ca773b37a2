"""Freshdesk's API v2, as far as notes go: a private note, and finding one again.

- Post: `POST /api/v2/tickets/{id}/notes` with `{"body": <HTML>, "private": true}` (201).
- Find: `GET /api/v2/tickets/{id}/conversations` (replies and notes), page by page.
- Auth: the API key as the Basic user, `X` as the password.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bot.helpdesk.errors import check, send

NAME = "freshdesk"
PER_PAGE = 100
PAGES = 5


class FreshdeskClient:
    def __init__(self, base_url: str, *, api_key: str, timeout: float) -> None:
        import httpx  # on first use: a process with no helpdesk configured never loads httpx

        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=httpx.BasicAuth(api_key, "X"),
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    async def add_private_note(self, ticket_id: str, body: str) -> dict[str, Any]:
        answer = await send(
            self._client, NAME, "POST", _ticket(ticket_id) + "/notes",
            json={"body": body, "private": True},
        )  # fmt: skip
        return check(NAME, answer).json()

    async def conversations(self, ticket_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, PAGES + 1):
            answer = await send(
                self._client, NAME, "GET", _ticket(ticket_id) + "/conversations",
                params={"page": page, "per_page": PER_PAGE},
            )  # fmt: skip
            items = check(NAME, answer).json()
            items = [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []
            found += items
            if len(items) < PER_PAGE:
                break
        return found

    async def aclose(self) -> None:
        await self._client.aclose()


def _ticket(ticket_id: str) -> str:
    return f"/api/v2/tickets/{quote(ticket_id, safe='')}"
