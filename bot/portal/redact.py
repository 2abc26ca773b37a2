"""Billing-page links are keys: no log line carries one.

`RedactLinks` is a logging filter that rewrites every record passing through it
(message, arguments, traceback text) so that a link's token reads
`/portal/l/pg_…[redacted]`: the grant ID stays (it opens nothing alone, and the
audit log names grants by it), the expiry and signature go. It is installed on
the handlers of the bot's own logs (the chargedesk.log file and stderr) and on
uvicorn's loggers, whose access log would otherwise print each link requested.

Kept free of heavy imports: `chargedesk` sets logging up before anything else.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
# A token anywhere (`<grant>.<expiry>.<signature>`, or a pay page's `<plink_…>.<expiry>.<signature>`),
# and whatever follows /portal/l/ or /portal/request/ in a path.
_TOKEN = re.compile(r"((?:pg|plink)_[A-Za-z0-9_-]{1,40})\.\d+\.[A-Za-z0-9_-]+")
# `%` is left alone: a message's own `/portal/l/%s` must keep its placeholder (its argument
# is redacted), and a token has no `%` in it.
_PATH = re.compile(
    r"(/portal/(?:l|request)/)(?!(?:pg|plink)_[A-Za-z0-9_-]{1,40}\.\[redacted\])([^\s\"'<>?#%]+)"
)
# The agent panel's signed entries carry their signature (or Front's auth_secret) in the query,
# and so does Front's plugin page (/panel/front?auth_secret=…).
_PANEL_ENTRY = re.compile(r"(/panel/(?:entry/[a-z]+|front)\?)[^\s\"'<>#]+")
# Gateways' pay pages (payment requests): whoever has the link can pay, and sees the customer.
_PAY_LINK = re.compile(r"(checkout\.stripe\.com/c/pay/|paypal\.com/checkoutnow\?)[^\s\"'<>]+")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def redact(text: str) -> str:
    """`text` with every billing-page token in it replaced."""
    if "/panel/" in text:
        text = _PANEL_ENTRY.sub(rf"\1{REDACTED}", text)
    if "checkout" in text:
        text = _PAY_LINK.sub(rf"\1{REDACTED}", text)
    if not any(mark in text for mark in ("pg_", "plink_", "/portal/l/", "/portal/request/")):
        return text
    text = _TOKEN.sub(rf"\1.{REDACTED}", text)
    return _PATH.sub(rf"\1{REDACTED}", text)


class RedactLinks(logging.Filter):
    """Rewrites records so that no billing-page token reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _scrub(value) for key, value in record.args.items()}
        if record.exc_info and not record.exc_text:
            # Formatted once here, as a Formatter would, so an exception's text is redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (int, float, bytes, type(None))):
        return value
    shown = str(value)  # a URL object, an exception: formatted with %s anyway
    cleaned = redact(shown)
    return value if cleaned == shown else cleaned


def install(handlers: Iterable[logging.Handler] = (), loggers: Iterable[str] = ()) -> None:
    """Put one RedactLinks on each handler and named logger (once, however often called)."""
    for target in [*handlers, *(logging.getLogger(name) for name in loggers)]:
        if not any(isinstance(f, RedactLinks) for f in target.filters):
            target.addFilter(RedactLinks())
