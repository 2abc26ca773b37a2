"""`POST /helpdesk/{name}/webhook`: a helpdesk's new-ticket delivery, verified, then recorded once.

- An unknown or unconfigured helpdesk: 404.
- A delivery its helpdesk's scheme does not vouch for (forged, unsigned, stale): 401,
  nothing recorded (the reason is logged, never the body or a secret).
- A handshake the helpdesk expects an answer to (Front's challenge): that answer, as JSON.
- A new ticket: recorded once and its note queued (`ticket_notes.receive`), then 200 at
  once; the note is written and posted by the job worker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.helpdesk import ticket_notes
from bot.helpdesk.base import Forged, Helpdesk
from bot.services import Services

log = logging.getLogger(__name__)


class HelpdeskWebhooks:
    """The webhook endpoint of every configured helpdesk (`registry.open_helpdesks`)."""

    def __init__(self, helpdesks: dict[str, Helpdesk]) -> None:
        self.helpdesks = helpdesks

    async def endpoint(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        helpdesk = self.helpdesks.get(name)
        if helpdesk is None:
            return JSONResponse({"error": f"no helpdesk {name!r} is configured"}, status_code=404)
        body = await request.body()
        try:
            delivery = helpdesk.read_delivery(body, request.headers, now=time.time())
        except Forged as exc:
            log.warning("%s webhook refused: %s", name, exc)
            return JSONResponse({"error": "not a genuine delivery"}, status_code=401)
        if delivery.answer is not None:
            return JSONResponse(dict(delivery.answer))
        if delivery.ticket is None:
            # Genuine, but no ticket in it: a test delivery, or a trigger body that is not ours.
            log.info("%s webhook: a genuine delivery naming no new ticket, ignored", name)
            return JSONResponse({"received": "ignored"})
        services: Services = request.app.state.services
        # The route names the helpdesk: a package cannot record a ticket under another's name.
        new = await ticket_notes.receive(services, replace(delivery.ticket, helpdesk=name))
        return JSONResponse({"received": "recorded" if new else "duplicate"})

    async def aclose(self) -> None:
        for helpdesk in self.helpdesks.values():
            try:
                await helpdesk.close()
            except Exception:
                log.warning("closing the %s helpdesk failed", helpdesk.name, exc_info=True)
