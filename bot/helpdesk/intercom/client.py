"""Intercom's REST API: admin notes on conversations.

A note is `POST /conversations/{id}/reply` with `{"message_type": "note", "type": "admin",
"admin_id", "body"}` (the body takes HTML); Intercom answers the conversation with the new
part in `conversation_parts`. Notes are found back in `GET /conversations/{id}`, whose
`conversation_parts` hold the 500 most recent parts. Every call carries the access token
as a bearer and the `Intercom-Version` the emulator follows (the published 2.16
description). Without a configured `admin_id` the token's own admin (`GET /me`) writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot.helpdesk.errors import HelpdeskUnavailable, check, segment, send

NAME = "intercom"
API = "https://api.intercom.io"
VERSION = "2.16"


class IntercomClient:
    def __init__(
        self,
        access_token: str,
        *,
        admin_id: str | None = None,
        base_url: str = API,
        timeout: float = 10.0,
    ) -> None:
        import httpx  # on first use: a process with no helpdesk configured never loads httpx

        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Intercom-Version": VERSION,
                "Accept": "application/json",
                "User-Agent": "ChargeDesk",
            },
        )
        self._admin_id = admin_id
        self._lock = asyncio.Lock()

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = check(NAME, await send(self._http, NAME, method, path, **kwargs))
        return response.json()

    async def admin_id(self) -> str:
        async with self._lock:
            if self._admin_id is None:
                self._admin_id = str((await self._json("GET", "/me"))["id"])
            return self._admin_id

    async def post_note(self, conversation_id: str, body: str) -> str:
        conversation = await self._json(
            "POST",
            f"/conversations/{segment(NAME, conversation_id)}/reply",
            json={
                "message_type": "note",
                "type": "admin",
                "admin_id": await self.admin_id(),
                "body": body,
            },
        )
        notes = [p for p in _parts(conversation) if p.get("part_type") == "note"]
        if not notes:
            raise HelpdeskUnavailable(NAME, "the note was sent but is not in Intercom's answer")
        return str(notes[-1]["id"])

    async def find_note(self, conversation_id: str, marker: str) -> str | None:
        conversation = await self._json("GET", f"/conversations/{segment(NAME, conversation_id)}")
        return next(
            (
                str(p["id"])
                for p in _parts(conversation)
                if p.get("part_type") == "note" and marker in (p.get("body") or "")
            ),
            None,
        )

    async def close(self) -> None:
        await self._http.aclose()


def _parts(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    parts = (conversation.get("conversation_parts") or {}).get("conversation_parts") or []
    return [p for p in parts if isinstance(p, dict)]
