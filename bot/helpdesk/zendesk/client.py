"""Zendesk's Ticketing API, as far as ChargeDesk goes: notes, and who a ticket or a user is.

- Post: `PUT /api/v2/tickets/{id}` with `{"ticket": {"comment": {"html_body", "public": false}}}`;
  the ticket audit in the answer holds the new comment's ID.
- Find: `GET /api/v2/tickets/{id}/comments`, newest first, a few pages at most.
- Read: `GET /api/v2/tickets/{id}.json` (its `requester_id`) and `GET /api/v2/users/{id}.json`
  (an agent's or a requester's email): the agent panel asks Zendesk itself, never the browser.
- Auth: an API token, `{email}/token` and the token as Basic credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.helpdesk.errors import check, segment, send
from bot.settings import ZendeskSettings

if TYPE_CHECKING:
    import httpx

NAME = "zendesk"
PAGES = 5  # comments pages searched for a marker (100 each): a new ticket has few


class ZendeskClient:
    def __init__(self, base_url: str, *, email: str, api_token: str, timeout: float) -> None:
        import httpx  # on first use: a process with no helpdesk configured never loads httpx

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
        import httpx

        target, base = httpx.URL(url), self._client.base_url
        return (
            url
            if (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)
            else None
        )

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        """The ticket object (`requester_id`, `subject`…); `HelpdeskRefused` (404) when
        Zendesk has no such ticket or will not show it to our token."""
        path = f"/api/v2/tickets/{segment(NAME, ticket_id)}.json"
        return _object(check(NAME, await send(self._client, NAME, "GET", path)), "ticket")

    async def user(self, user_id: str) -> dict[str, Any]:
        """The user object (`email`, `name`, `locale`…); `HelpdeskRefused` (404) for nobody."""
        path = f"/api/v2/users/{segment(NAME, user_id)}.json"
        return _object(check(NAME, await send(self._client, NAME, "GET", path)), "user")

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ZendeskClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def for_settings(settings: ZendeskSettings) -> ZendeskClient:
    """A client for the account `[helpdesk.zendesk]` names (`base_url` overrides the host)."""
    assert settings.email is not None and settings.api_token is not None
    base = (
        str(settings.base_url) if settings.base_url else f"https://{settings.subdomain}.zendesk.com"
    )
    return ZendeskClient(
        base,
        email=settings.email,
        api_token=settings.api_token.get_secret_value(),
        timeout=settings.timeout,
    )


def _object(answer: httpx.Response, name: str) -> dict[str, Any]:
    """`{"<name>": {...}}`'s object; an empty one when Zendesk answered something else."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    found = body.get(name) if isinstance(body, dict) else None
    return found if isinstance(found, dict) else {}


def _ticket(ticket_id: str) -> str:
    return f"/api/v2/tickets/{quote(ticket_id, safe='')}"
