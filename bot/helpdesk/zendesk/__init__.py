"""Zendesk: a new-ticket trigger's signed webhook in, a private ticket comment out.

Enabled when `[helpdesk.zendesk]` has `subdomain`, `email` and `api_token`; deliveries
are refused until `webhook_secret` (the webhook's signing secret) is set too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from bot.helpdesk.base import Delivery, Helpdesk, NoteFormat
from bot.helpdesk.zendesk import webhooks
from bot.helpdesk.zendesk.client import ZendeskClient
from bot.settings import ConfigError, ZendeskSettings

__all__ = ["Zendesk", "from_settings"]

_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class Zendesk(Helpdesk):
    name: ClassVar[str] = "zendesk"
    note_format: ClassVar[NoteFormat] = "html"

    def __init__(self, settings: ZendeskSettings) -> None:
        self.settings = settings
        self._client: ZendeskClient | None = None

    @property
    def client(self) -> ZendeskClient:
        # Opened at the first call: the web app only reads deliveries.
        if self._client is None:
            s = self.settings
            assert s.email is not None and s.api_token is not None
            base = str(s.base_url) if s.base_url else f"https://{s.subdomain}.zendesk.com"
            self._client = ZendeskClient(
                base, email=s.email, api_token=s.api_token.get_secret_value(), timeout=s.timeout
            )
        return self._client

    def read_delivery(self, body: bytes, headers: Mapping[str, str], *, now: float) -> Delivery:
        secret = self.settings.webhook_secret
        return webhooks.read(
            body, headers, now=now, tolerance=self.settings.webhook_tolerance,
            secret=secret.get_secret_value() if secret is not None else None,
        )  # fmt: skip

    async def post_note(self, ticket_id: str, body: str) -> str:
        answer = await self.client.add_private_comment(ticket_id, body)
        events = (answer.get("audit") or {}).get("events") or []
        comment = next(
            (e for e in events if isinstance(e, dict) and e.get("type") == "Comment"), None
        )
        if comment is not None and comment.get("id") is not None:
            return str(comment["id"])
        audit = (answer.get("audit") or {}).get("id")
        return f"audit:{audit}" if audit is not None else "posted"

    async def find_note(self, ticket_id: str, marker: str) -> str | None:
        for comment in await self.client.comments(ticket_id):
            said = " ".join(
                str(comment.get(key) or "") for key in ("body", "html_body", "plain_body")
            )
            if marker in said and comment.get("public") is False:
                return str(comment.get("id"))
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def from_settings(settings: ZendeskSettings) -> Zendesk | None:
    """The Zendesk helpdesk, or None until subdomain (or base_url), email and api_token are set."""
    if not ((settings.subdomain or settings.base_url) and settings.email and settings.api_token):
        return None
    if settings.subdomain and not _SUBDOMAIN.match(settings.subdomain):
        raise ConfigError(
            f"helpdesk.zendesk.subdomain: yourcompany of yourcompany.zendesk.com, "
            f"not {settings.subdomain!r}"
        )
    return Zendesk(settings)
