"""The HMAC checks every helpdesk's webhooks share: one digest, one constant-time comparison.

Each helpdesk signs differently (Help Scout: base64 HMAC-SHA1 of the body; Intercom:
`sha1=` and hex HMAC-SHA1; Front: base64 HMAC-SHA256 of `timestamp:body`), but each
check is the same three steps: compute the digest of the exact bytes received, encode
it as the helpdesk does, compare in constant time. A missing secret, a missing header
and a wrong signature are all `Forged`: nothing is done and the sender hears 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal

from bot.helpdesk.base import Forged

Algorithm = Literal["sha1", "sha256"]
Encoding = Literal["base64", "hex"]


def digest(secret: str, message: bytes, *, algorithm: Algorithm, encoding: Encoding) -> str:
    """The signature of `message` with `secret`, encoded as text."""
    mac = hmac.new(secret.encode(), message, getattr(hashlib, algorithm)).digest()
    return base64.b64encode(mac).decode() if encoding == "base64" else mac.hex()


def verify(
    given: str | None,
    secret: str | None,
    message: bytes,
    *,
    algorithm: Algorithm,
    encoding: Encoding,
    prefix: str = "",
    what: str = "signature",
) -> None:
    """Raise `Forged` unless `given` is `prefix` + the digest of `message` with `secret`."""
    if not secret:
        raise Forged(f"no secret is configured to check the {what}")
    if not given:
        raise Forged(f"the {what} is missing")
    expected = prefix + digest(secret, message, algorithm=algorithm, encoding=encoding)
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise Forged(f"the {what} does not match")


def fresh(sent_at: float, now: float, tolerance: float, *, what: str = "delivery") -> None:
    """Raise `Forged` when `sent_at` (Unix seconds) is more than `tolerance` from `now`."""
    if abs(now - sent_at) > tolerance:
        raise Forged(f"the {what} is stale ({now - sent_at:+.0f} s, tolerance {tolerance:g} s)")
