"""What a customer's message names: gateway IDs, order numbers, emails, our document numbers.

Core, for every door that reads free text: helpdesk tickets, and the messages helpdesks
post into Slack's helpdesk channels (`bot/chat/slack/adapter.py` collects their text).

Bare `#1234` is left out on purpose: Zendesk, Freshdesk and Help Scout number their
tickets that way, and a ticket number must never pull up the customer whose order
happens to share it. Whatever is found here is a match "not verified".
"""

from __future__ import annotations

import re

_OBJECT_ID = re.compile(r"\b(?:ch|py|pi|in|cus|sub)_[A-Za-z0-9_]{3,}\b")
_PAYPAL_ID = re.compile(r"\b(?:I-[0-9A-Z]{12}|(?=[0-9A-Z]*\d)(?=[0-9A-Z]*[A-Z])[0-9A-Z]{17})\b")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_ORDER = re.compile(r"\border\s*(?:no\.?|number|num\.?)?\s*[:#]?\s*#?(\d{3,12})\b", re.IGNORECASE)
# `INV-2026-000042`: a prefix of branding.toml (A-Z, 0-9, -), the year, six digits
# (bot/documents/issue.py: format_number).
_DOCUMENT = re.compile(r"(?<![A-Za-z0-9-])([A-Z0-9][A-Z0-9-]{0,11}-\d{4}-\d{6})(?!\d)")


def find_references(text: str) -> list[str]:
    """Gateway IDs, order numbers and emails in `text`, most precise first, no repeats."""
    found: list[str] = []
    for candidate in (
        *_OBJECT_ID.findall(text),
        *_PAYPAL_ID.findall(text),
        *(e.lower() for e in _EMAIL.findall(text)),
        *_ORDER.findall(text),
    ):
        if candidate not in found:
            found.append(candidate)
    return found


def find_document_numbers(text: str) -> list[str]:
    """Numbers shaped like our documents' (`RCT-2026-000001`), in order, no repeats."""
    return list(dict.fromkeys(_DOCUMENT.findall(text)))
