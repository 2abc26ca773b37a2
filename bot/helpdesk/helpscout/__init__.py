"""Help Scout: the automatic billing note (webhook in, note out) and the dynamic sidebar app.

Configured in `[helpdesk.helpscout]`:
- `app_id` and `app_secret` (required): an OAuth2 app's client credentials (Your Profile >
  My Apps), for the Mailbox API 2.0 that writes notes. Without both, Help Scout is off
  (`from_settings` answers None).
- `secret_key`: the secret key typed into the Webhooks app and the dynamic app: every
  delivery and sidebar request is checked against it (`X-HelpScout-Signature`). Without
  it every delivery is refused.

Notes are written in HTML (Help Scout renders thread bodies as HTML).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from bot.helpdesk.base import Delivery, Helpdesk, NoteFormat
from bot.helpdesk.helpscout import webhooks
from bot.helpdesk.helpscout.client import API, HelpScoutClient
from bot.settings import HelpScoutSettings


class HelpScout(HelpScoutClient, Helpdesk):
    """The notes API client (`client.py`) that also reads the helpdesk's deliveries."""

    name: ClassVar[str] = "helpscout"
    note_format: ClassVar[NoteFormat] = "html"

    def __init__(self, settings: HelpScoutSettings) -> None:
        assert settings.app_id is not None and settings.app_secret is not None
        super().__init__(
            settings.app_id.get_secret_value(),
            settings.app_secret.get_secret_value(),
            base_url=str(settings.base_url) if settings.base_url else API,
            timeout=settings.timeout,
        )
        self._secret_key = settings.secret_key.get_secret_value() if settings.secret_key else None

    def read_delivery(self, body: bytes, headers: Mapping[str, str], *, now: float) -> Delivery:
        # Help Scout signs no timestamp: `now` has nothing to judge (see webhooks.py).
        return webhooks.read(body, headers, self._secret_key)


def from_settings(settings: HelpScoutSettings) -> HelpScout | None:
    """HelpScout when `app_id` and `app_secret` are set; None otherwise."""
    if settings.app_id is None or settings.app_secret is None:
        return None
    return HelpScout(settings)
