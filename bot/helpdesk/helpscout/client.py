"""Help Scout's Mailbox API 2.0: notes on conversations, with OAuth2 client credentials.

`POST /v2/oauth2/token` (grant_type=client_credentials) gives a bearer token valid for
`expires_in` seconds (two days at Help Scout); it is kept until a minute before it
expires, and fetched again at once when the API answers 401 (revoked, or the app's
secret rotated). A note is `POST /v2/conversations/{id}/notes` `{"text"}`: Help Scout
answers 201 with the new thread's ID in the `Resource-ID` header. Notes are found back
through `GET /v2/conversations/{id}/threads`, page by page.

References: developer.helpscout.com/mailbox-api/overview/authentication/,
.../endpoints/conversations/threads/note/, .../endpoints/conversations/threads/list/.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from bot.helpdesk.errors import HelpdeskUnavailable, check, segment, send

if TYPE_CHECKING:
    import httpx

NAME = "helpscout"
API = "https://api.helpscout.net"
EARLY = 60.0  # seconds before expiry a token is fetched again
MAX_PAGES = 50


class HelpScoutClient:
    def __init__(
        self, app_id: str, app_secret: str, *, base_url: str = API, timeout: float = 10.0
    ) -> None:
        self._app_id = app_id
        self._app_secret = app_secret
        import httpx  # on first use: a process with no helpdesk configured never loads httpx

        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "ChargeDesk"},
        )
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def _bearer(self, *, renew: bool = False) -> str:
        async with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires:
                response = check(
                    NAME,
                    await send(
                        self._http,
                        NAME,
                        "POST",
                        "/v2/oauth2/token",
                        json={
                            "grant_type": "client_credentials",
                            "client_id": self._app_id,
                            "client_secret": self._app_secret,
                        },
                    ),
                )
                answer = response.json()
                self._token = str(answer["access_token"])
                self._expires = time.monotonic() + max(0.0, float(answer["expires_in"]) - EARLY)
            return self._token

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A Mailbox API call with the cached token; one fresh token and retry on 401."""
        token = await self._bearer()
        response = await send(
            self._http, NAME, method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )
        if response.status_code == 401:
            token = await self._bearer(renew=True)
            response = await send(
                self._http,
                NAME,
                method,
                path,
                headers={"Authorization": f"Bearer {token}"},
                **kwargs,
            )
        return check(NAME, response)

    async def post_note(self, conversation_id: str, text: str) -> str:
        response = await self._call(
            "POST", f"/v2/conversations/{segment(NAME, conversation_id)}/notes", json={"text": text}
        )
        note_id = response.headers.get("Resource-ID")
        if not note_id:
            raise HelpdeskUnavailable(NAME, "the note was created but its ID was not returned")
        return note_id

    async def find_note(self, conversation_id: str, marker: str) -> str | None:
        page = 1
        while page <= MAX_PAGES:
            response = await self._call(
                "GET",
                f"/v2/conversations/{segment(NAME, conversation_id)}/threads",
                params={"page": page},
            )
            answer = response.json()
            for thread in (answer.get("_embedded") or {}).get("threads") or []:
                if thread.get("type") == "note" and marker in (thread.get("body") or ""):
                    return str(thread["id"])
            total = int((answer.get("page") or {}).get("totalPages") or 1)
            if page >= total:
                return None
            page += 1
        return None

    async def close(self) -> None:
        await self._http.aclose()
