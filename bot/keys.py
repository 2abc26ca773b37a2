"""The deployment's signing key: billing-page links, page cookies and one-time codes.

`portal.secret` (CHARGEDESK_PORTAL__SECRET) in production; on the embedded
defaults a random key is generated once into `data_dir/portal.key` (mode 0600),
so links keep working across restarts of the same installation.

A generated key belongs to one data folder, so it is only for one installation:
with DATABASE_URL or REDIS_URL (shared stores, so possibly several processes
with their own folders) Settings refuses to start without `portal.secret`, or a
link issued by one process would be "forged" on the next.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.services import Services

# Read once per process and folder: every link, code and page audit asks for the key.
_GENERATED: dict[Path, bytes] = {}


def signing_key(settings: Settings) -> bytes:
    if settings.portal.secret is not None:
        return settings.portal.secret.get_secret_value().encode()
    path = (Path(settings.data_dir) / "portal.key").resolve()
    if path not in _GENERATED:
        _GENERATED[path] = _read_or_create(path)
    return _GENERATED[path]


def code_for(services: Services, code_id: str) -> str:
    """The six digits of code `code_id`: made from its ID and the deployment's key.

    So the code itself is never stored, not even in its queued email, which is
    filled in at send time; only an HMAC of it is kept to check what is typed.
    """
    digest = hmac.new(
        signing_key(services.settings), f"verification-code:{code_id}".encode(), hashlib.sha256
    ).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**6:06d}"


def _read_or_create(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    try:
        # O_EXCL: two processes starting at once keep the same key, the first one's.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
