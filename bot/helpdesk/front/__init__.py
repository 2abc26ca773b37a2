"""Front: the automatic billing note (a comment) on every conversation a customer opens.

Configured in `[helpdesk.front]`:
- `api_token` (required): an API token (Settings > Developers > API tokens) with the
  comments scope, for the Core API that writes comments. Without it Front is off
  (`from_settings` answers None).
- `app_secret`: the secret of the app that carries the application webhook (Settings >
  Developers > your app > Basic information): every request, the challenge included,
  is checked against it (`X-Front-Signature`). Without it every request is refused.
- `author_id`: the teammate (tea_…) our comments are written as; Front's bot teammate
  for the token when unset.

Notes are plain text (`note_format = "text"`): Front renders comments as Markdown, and the
pipeline's text rendering escapes what would start markup (see client.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from bot.helpdesk.base import Delivery, Helpdesk, NoteFormat
from bot.helpdesk.front import webhooks
from bot.helpdesk.front.client import API, FrontClient
from bot.settings import FrontSettings


class Front(FrontClient, Helpdesk):
    """The notes API client (`client.py`) that also reads the helpdesk's deliveries."""

    name: ClassVar[str] = "front"
    note_format: ClassVar[NoteFormat] = "text"

    def __init__(self, settings: FrontSettings) -> None:
        assert settings.api_token is not None
        super().__init__(
            settings.api_token.get_secret_value(),
            author_id=settings.author_id,
            base_url=str(settings.base_url) if settings.base_url else API,
            timeout=settings.timeout,
        )
        self._app_secret = settings.app_secret.get_secret_value() if settings.app_secret else None
        self._tolerance = settings.webhook_tolerance

    def read_delivery(self, body: bytes, headers: Mapping[str, str], *, now: float) -> Delivery:
        return webhooks.read(body, headers, self._app_secret, now=now, tolerance=self._tolerance)


def from_settings(settings: FrontSettings) -> Front | None:
    """Front when `api_token` is set; None otherwise."""
    if settings.api_token is None:
        return None
    return Front(settings)
