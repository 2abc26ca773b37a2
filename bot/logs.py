"""Logging: one JSON object per line off a terminal, plain text on one, secrets never written.

- `bound(request_id=..., approval_id=...)` puts IDs in context variables; every record logged
  inside (in this task and the tasks it starts) carries them, whichever logger wrote it.
- `Redact` rewrites each record before any handler formats it: Stripe keys (`sk_live_`,
  `sk_test_`, `rk_live_`, `rk_test_`, `whsec_`), Slack tokens (`xoxb-`, `xoxp-`, `xapp-`, ...),
  bearer tokens and Authorization headers, and the values of every secret setting (each
  `SecretStr` in the settings), in the message, its arguments and its traceback.
- `configure()` sets the root logger up once for a process; uvicorn's loggers are sent to it
  (their own handlers removed), so its access and error lines share the format and the
  redaction. A file is written only when `logs.file` asks, rotated by size.

Kept free of heavy imports: `chargedesk` sets logging up before anything else.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import secrets
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from bot.settings import Settings

REDACTED = "[redacted]"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_IDS: dict[str, ContextVar[str | None]] = {
    "request_id": ContextVar("request_id", default=None),
    "approval_id": ContextVar("approval_id", default=None),
}
# Tokens recognisable by their shape, wherever they appear.
_TOKENS = re.compile(
    r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"  # Stripe secret and restricted keys
    r"|\bwhsec_[A-Za-z0-9+/=]{8,}"  # Stripe webhook secrets
    r"|\bxox[abposr]-[A-Za-z0-9-]{8,}"  # Slack bot, user, app-config tokens
    r"|\bxapp-[A-Za-z0-9-]{8,}"  # Slack app-level tokens
)
# `Authorization: Bearer abc`, `authorization=Basic abc`, `'Authorization': 'Bearer abc'`, `Bearer abc`.
_AUTH = re.compile(
    r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?)(?:(bearer|basic|token)\s+)?[^\s'\",;]+"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_SHORTEST_SECRET = 8  # a shorter "secret" would redact ordinary words


def new_id() -> str:
    """A fresh request ID: 16 hex characters."""
    return secrets.token_hex(8)


def current(name: str) -> str | None:
    """The ID of that name bound in this context, if any."""
    return _IDS[name].get()


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Inside the block, every log record carries these IDs (`request_id`, `approval_id`)."""
    tokens = [(_IDS[name], _IDS[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class Redact(logging.Filter):
    """Rewrites records so that no token or secret setting reaches a handler; adds the IDs."""

    def __init__(self, secrets_: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted(
            {s for s in secrets_ if len(s) >= _SHORTEST_SECRET}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        """`text` with every known secret and token-shaped word replaced."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _TOKENS.sub(REDACTED, text)
        text = _AUTH.sub(
            lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{REDACTED}", text
        )
        return _BEARER.sub(rf"\1{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _IDS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        # The message is formatted here, once, so an argument's secret cannot slip past.
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is rather than lose the line
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the bound IDs, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _IDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class PlainText(logging.Formatter):
    """A terminal's line: time, level, logger, message, then the bound IDs if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{n}={v}" for n in _IDS if (v := getattr(record, n, None)) is not None)
        if not ids:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{ids}]{newline}{rest}"


def secret_values(model: BaseModel) -> list[str]:
    """Every SecretStr value in a settings model, nested sections included."""
    from pydantic import BaseModel, SecretStr

    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            found.extend(secret_values(value))
    return found


def formatter(kind: str, stream: IO[str]) -> logging.Formatter:
    """JSON lines or plain text; `auto` is plain text on a terminal only."""
    if kind == "auto":
        kind = "text" if stream.isatty() else "json"
    return JsonLines() if kind == "json" else PlainText()


def log_file(settings: Settings) -> Path | None:
    """The log file, if the settings keep one."""
    if not settings.logs.to_file:
        return None
    return settings.logs.file or Path(settings.data_dir) / "chargedesk.log"


def configure(
    settings: Settings,
    *,
    stream: IO[str] | None = None,
    level: int = logging.INFO,
    console: logging.Handler | None = None,
) -> list[logging.Handler]:
    """Set the root logger up for this process and return its handlers: `console` (default:
    `stream`, default stdout, in the configured format at `level`) and the rotated file unless
    `logs.to_file` is off. Every handler redacts; uvicorn's loggers go through them too."""
    if console is None:
        stream = stream if stream is not None else sys.stdout
        console = logging.StreamHandler(stream)
        console.setLevel(level)
        console.setFormatter(formatter(settings.logs.format, stream))
    redact = Redact(secret_values(settings))
    handlers: list[logging.Handler] = [console]
    path = log_file(settings)
    if path is not None:
        handlers.append(rotated_file(path, settings))
    for handler in handlers:
        handler.addFilter(redact)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    for name in UVICORN_LOGGERS:  # their records reach our handlers, not uvicorn's own
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handlers


def rotated_file(path: Path, settings: Settings) -> logging.Handler:
    """The optional log file: rotated by size, in the configured format (JSON unless `text`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path,
        maxBytes=settings.logs.file_max_bytes,
        backupCount=settings.logs.file_backups,
        encoding="utf-8",
    )
    handler.setFormatter(PlainText() if settings.logs.format == "text" else JsonLines())
    return handler
