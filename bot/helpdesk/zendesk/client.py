"""Zendesk's Ticketing API, as far as notes go: a private comment, and finding one again.

- Post: `PUT /api/v2/tickets/{id}` with `{"ticket": {"comment": {"html_body", "public": false}}}`;
  the ticket audit in the answer holds the new comment's ID.
- Find: `GET /api/v2/tickets/{id}/comments`, newest first, a few pages at most.
- Auth: an API token, `{email}/token` and the token as Basic credentials.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from bot.helpdesk.errors import check, send

NAME = "zendesk"
PAGES = 5  # comments pages searched for a marker (100 each): a new ticket has few


class ZendeskClient:
    def __init__(self, base_url: str, *, email: str, api_token: str, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=httpx.BasicAuth(f"{email}/token", api_token),
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    async def add_private_comment(self, ticket_id: str, html_body: str) -> dict[str, Any]:
        """The answer's JSON (`ticket`, `audit`) once Zendesk stored the comment."""
        payload = {"ticket": {"comment": {"html_body": html_body, "public": False}}}
        answer = await send(self._client, NAME, "PUT", _ticket(ticket_id), json=payload)
        return check(NAME, answer).json()

    async def comments(self, ticket_id: str) -> list[dict[str, Any]]:
        """The ticket's comments, newest first (up to PAGES pages)."""
        found: list[dict[str, Any]] = []
        url: str | None = _ticket(ticket_id) + "/comments"
        params: dict[str, Any] | None = {"sort_order": "desc", "per_page": 100}
        for _ in range(PAGES):
            if url is None:
                break
            answer = check(NAME, await send(self._client, NAME, "GET", url, params=params))
            page = answer.json()
            found += [c for c in page.get("comments") or [] if isinstance(c, dict)]
            url, params = self._ours(page.get("next_page")), None
        return found

    def _ours(self, url: object) -> str | None:
        """A next page on Zendesk's own host; anything else is not followed (it would get our token)."""
        if not isinstance(url, str):
            return None
        target, base = httpx.URL(url), self._client.base_url
        return (
            url
            if (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)
            else None
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _ticket(ticket_id: str) -> str:
    return f"/api/v2/tickets/{quote(ticket_id, safe='')}"
