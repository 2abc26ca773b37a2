"""Every configured helpdesk, by name: each package's `from_settings` says whether it is on.

A helpdesk package (`bot/helpdesk/<name>/`) exposes `from_settings(settings) -> Helpdesk | None`
taking its own section of `[helpdesk]` (None: not configured). The web app opens them all
to read deliveries; the note job opens the one it posts to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.helpdesk import freshdesk, front, helpscout, intercom, zendesk
from bot.helpdesk.base import Helpdesk
from bot.settings import Settings

# name → the package's `from_settings`, fed the `[helpdesk.<name>]` section.
FACTORIES: dict[str, Callable[[Any], Helpdesk | None]] = {
    "zendesk": zendesk.from_settings,
    "freshdesk": freshdesk.from_settings,
    "helpscout": helpscout.from_settings,
    "intercom": intercom.from_settings,
    "front": front.from_settings,
}


def open_helpdesk(settings: Settings, name: str) -> Helpdesk | None:
    """The helpdesk `name` if it is known and configured."""
    factory = FACTORIES.get(name)
    section = getattr(settings.helpdesk, name, None)
    if factory is None or section is None:
        return None
    return factory(section)


def open_helpdesks(settings: Settings) -> dict[str, Helpdesk]:
    """Every configured helpdesk, by name (close each with `close()` when done)."""
    opened = {name: open_helpdesk(settings, name) for name in FACTORIES}
    return {name: helpdesk for name, helpdesk in opened.items() if helpdesk is not None}
