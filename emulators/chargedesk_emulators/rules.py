"""What the Zendesk and Freshdesk emulators share: the helpdesks' own rules and checks.

- A trigger (Zendesk) or an automation rule (Freshdesk) sends a JSON body an admin wrote,
  with placeholders (`{{ticket.id}}`) the helpdesk fills in: `fill` does that.
- Both take Basic credentials (`basic`), keep HTML beside plain text (`plain`), and hold
  their answers to a published or documented schema (`schema_problems`).
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

import jsonschema
from starlette.requests import Request


def fill(template: Any, values: dict[str, str]) -> Any:
    """`template` with each placeholder replaced in every string (the JSON is encoded after)."""
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, str):
        for placeholder, value in values.items():
            template = template.replace(placeholder, value)
    return template


def plain(markup: str) -> str:
    """HTML as one line of text."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", markup)).split())


def basic(request: Request) -> tuple[str, str] | None:
    """The (user, password) of a Basic Authorization header, or None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def schema_problems(root: dict[str, Any], ref: str, value: Any) -> list[str]:
    """How `value` differs from the schema at `ref` (`#/definitions/x`) of the document `root`."""
    validator = jsonschema.Draft7Validator({"$ref": ref, **root})
    name = ref.rsplit("/", 1)[-1]
    return [
        f"{name}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}"
        for e in validator.iter_errors(value)
    ]
