"""Intercom: the automatic billing note on every conversation a contact opens.

Configured in `[helpdesk.intercom]`:
- `access_token` (required): the app's access token (Developer Hub > your app >
  Authentication), for the REST API that writes notes. Without it Intercom is off
  (`from_settings` answers None).
- `client_secret`: the app's client secret (Basic information): every webhook
  notification is checked against it (`X-Hub-Signature`). Without it every one is refused.
- `admin_id`: the admin our notes are written as; the token's own admin when unset.

Notes are written in HTML (Intercom note bodies take HTML).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from bot.helpdesk.base import Delivery, Helpdesk, NoteFormat
from bot.helpdesk.intercom import webhooks
from bot.helpdesk.intercom.client import API, IntercomClient
from bot.settings import IntercomSettings


class Intercom(IntercomClient, Helpdesk):
    """The notes API client (`client.py`) that also reads the helpdesk's deliveries."""

    name: ClassVar[str] = "intercom"
    note_format: ClassVar[NoteFormat] = "html"

    def __init__(self, settings: IntercomSettings) -> None:
        assert settings.access_token is not None
        super().__init__(
            settings.access_token.get_secret_value(),
            admin_id=settings.admin_id,
            base_url=str(settings.base_url) if settings.base_url else API,
            timeout=settings.timeout,
        )
        secret = settings.client_secret
        self._client_secret = secret.get_secret_value() if secret else None
        self._tolerance = settings.webhook_tolerance

    def read_delivery(self, body: bytes, headers: Mapping[str, str], *, now: float) -> Delivery:
        return webhooks.read(body, headers, self._client_secret, now=now, tolerance=self._tolerance)


def from_settings(settings: IntercomSettings) -> Intercom | None:
    """Intercom when `access_token` is set; None otherwise."""
    if settings.access_token is None:
        return None
    return Intercom(settings)
