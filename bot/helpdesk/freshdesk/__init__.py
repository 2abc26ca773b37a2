"""Freshdesk: a ticket-creation automation's webhook in (shared secret), a private note out.

Enabled when `[helpdesk.freshdesk]` has `domain` and `api_key`; deliveries are refused
until `webhook_secret` is set too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from bot.helpdesk.base import Delivery, Helpdesk, NoteFormat
from bot.helpdesk.freshdesk import webhooks
from bot.helpdesk.freshdesk.client import FreshdeskClient
from bot.settings import ConfigError, FreshdeskSettings

__all__ = ["Freshdesk", "from_settings"]

_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$")


class Freshdesk(Helpdesk):
    name: ClassVar[str] = "freshdesk"
    note_format: ClassVar[NoteFormat] = "html"  # a note's `body` is HTML

    def __init__(self, settings: FreshdeskSettings) -> None:
        self.settings = settings
        self._client: FreshdeskClient | None = None

    @property
    def client(self) -> FreshdeskClient:
        if self._client is None:
            s = self.settings
            assert s.api_key is not None
            base = str(s.base_url) if s.base_url else f"https://{s.domain}"
            self._client = FreshdeskClient(
                base, api_key=s.api_key.get_secret_value(), timeout=s.timeout
            )
        return self._client

    def read_delivery(self, body: bytes, headers: Mapping[str, str], *, now: float) -> Delivery:
        secret = self.settings.webhook_secret
        return webhooks.read(
            body, headers, header=self.settings.webhook_header,
            secret=secret.get_secret_value() if secret is not None else None,
        )  # fmt: skip

    async def post_note(self, ticket_id: str, body: str) -> str:
        note = await self.client.add_private_note(ticket_id, body)
        return str(note.get("id", "posted"))

    async def find_note(self, ticket_id: str, marker: str) -> str | None:
        for item in await self.client.conversations(ticket_id):
            said = f"{item.get('body') or ''} {item.get('body_text') or ''}"
            if marker in said and item.get("private") is True:
                return str(item.get("id"))
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def from_settings(settings: FreshdeskSettings) -> Freshdesk | None:
    """The Freshdesk helpdesk, or None until domain (or base_url) and api_key are set."""
    if not ((settings.domain or settings.base_url) and settings.api_key):
        return None
    if settings.domain and not _DOMAIN.match(settings.domain.lower()):
        raise ConfigError(
            f"helpdesk.freshdesk.domain: a host name such as yourcompany.freshdesk.com, "
            f"not {settings.domain!r}"
        )
    return Freshdesk(settings)
