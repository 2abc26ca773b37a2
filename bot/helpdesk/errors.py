"""How a helpdesk's API refused or failed us: retry later, or give up.

The pipeline retries a note through the job queue only when trying again can help:
`HelpdeskUnavailable` (a timeout, a dropped connection, 429, 5xx). `HelpdeskRefused`
(any other 4xx: bad credentials, no such ticket, a body the helpdesk will not take)
stays refused however often it is sent, so the job stops and says why.

Messages name the helpdesk, the status and the helpdesk's own words, never a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,100}")


class HelpdeskError(Exception):
    """A call to a helpdesk's API that did not do what was asked."""

    def __init__(self, helpdesk: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{helpdesk}: {message}")
        self.helpdesk = helpdesk
        self.status = status
        self.message = message


class HelpdeskUnavailable(HelpdeskError):
    """Try again later: the helpdesk was slow, down or rate-limiting us."""


class HelpdeskRefused(HelpdeskError):
    """Do not try again: the helpdesk refused the request itself."""


def check(helpdesk: str, response: httpx.Response) -> httpx.Response:
    """The response, if it succeeded; otherwise the error its status calls for."""
    status = response.status_code
    if status < 400:
        return response
    said = " ".join(response.text.split())[:300]
    message = f"{response.request.method} {response.request.url.path} answered {status}" + (
        f": {said}" if said else ""
    )
    if status >= 500 or status in RETRYABLE_STATUS:
        raise HelpdeskUnavailable(helpdesk, message, status=status)
    raise HelpdeskRefused(helpdesk, message, status=status)


@contextmanager
def reaching(helpdesk: str) -> Iterator[None]:
    """Turn a transport failure (timeout, refused connection) into `HelpdeskUnavailable`."""
    import httpx  # on first use: a process with no helpdesk configured never loads httpx

    try:
        yield
    except httpx.TimeoutException:
        raise HelpdeskUnavailable(helpdesk, "timed out") from None
    except httpx.TransportError as exc:
        raise HelpdeskUnavailable(helpdesk, f"unreachable ({type(exc).__name__})") from None


async def send(
    client: httpx.AsyncClient, helpdesk: str, method: str, url: str, **kwargs: object
) -> httpx.Response:
    """One request; a transport failure becomes `HelpdeskUnavailable`, the status is left to check."""
    with reaching(helpdesk):
        return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


def segment(helpdesk: str, value: str) -> str:
    """A ticket ID fit to stand in a URL path (letters, digits, `_`, `-`); refused otherwise."""
    if not _SEGMENT.fullmatch(value):
        raise HelpdeskRefused(helpdesk, f"{value[:100]!r} is not a {helpdesk} ticket ID")
    return value
