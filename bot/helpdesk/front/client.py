"""Front's Core API: comments (internal notes) on conversations.

A comment is `POST /conversations/{id}/comments` `{"body", "author_id"?}` with the API
token as a bearer (dev.frontapp.com/reference/add-comment); Front answers 201 with the
comment (`id` com_…). Without `author_id` Front posts it as the API token's own bot
teammate. Comments are found back with `GET /conversations/{id}/comments`, following
`_pagination.next`.

Front renders a comment's body as Markdown. The pipeline hands us plain text already
made inert for Markdown (`bot/helpdesk/render.py` escapes what starts markup in every
datum), so the body is sent as it is, but for one thing: Markdown joins consecutive
lines into one paragraph, so each line ends in a hard break (two spaces) to keep the
note's lines apart. `find_note` reads a comment as its Markdown shows it (backslash
escapes undone), so the marker is found whatever the renderer escaped in it.
"""

from __future__ import annotations

import re
from typing import Any

from bot.helpdesk.errors import check, segment, send

NAME = "front"
API = "https://api2.frontapp.com"
MAX_PAGES = 50
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark: any ASCII punctuation


def hard_breaks(text: str) -> str:
    """Each line of `text` ending in a Markdown hard break, so Front keeps the lines apart."""
    return "  \n".join(line.rstrip() for line in text.split("\n"))


def shown(markdown: str) -> str:
    """The text a Markdown body shows, as far as backslash escapes go (`cdn\\_1` is `cdn_1`)."""
    return _ESCAPED.sub(r"\1", markdown)


class FrontClient:
    def __init__(
        self,
        api_token: str,
        *,
        author_id: str | None = None,
        base_url: str = API,
        timeout: float = 10.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        import httpx  # on first use: a process with no helpdesk configured never loads httpx

        self._http = httpx.AsyncClient(
            base_url=self._base,
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {api_token}",
                "Accept": "application/json",
                "User-Agent": "ChargeDesk",
            },
        )
        self._author_id = author_id

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return check(NAME, await send(self._http, NAME, method, url, **kwargs)).json()

    async def post_note(self, conversation_id: str, text: str) -> str:
        body: dict[str, str] = {"body": hard_breaks(text)}
        if self._author_id:
            body["author_id"] = self._author_id
        comment = await self._json(
            "POST", f"/conversations/{segment(NAME, conversation_id)}/comments", json=body
        )
        return str(comment["id"])

    async def find_note(self, conversation_id: str, marker: str) -> str | None:
        url: str | None = f"/conversations/{segment(NAME, conversation_id)}/comments"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            page = await self._json("GET", url)
            for comment in page.get("_results") or []:
                if marker in shown(comment.get("body") or ""):
                    return str(comment["id"])
            following = (page.get("_pagination") or {}).get("next")
            # Only ever follow Front's own links: the token goes wherever we send a request.
            url = (
                following
                if isinstance(following, str) and following.startswith(self._base)
                else None
            )
        return None

    async def close(self) -> None:
        await self._http.aclose()
