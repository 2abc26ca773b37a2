"""The inbox app's two URLs under `chargedesk serve`: POST /helpdesk/intercom/initialize and /submit.

Intercom signs each request with the app's client secret: `X-Body-Signature` is the hex
HMAC-SHA256 of the raw body (developers.intercom.com, Canvas Kit, "Signing notifications").
An unsigned or forged request is answered 401 before anything is read or run. What a
genuine request asks is the door's business (`door.py`).
"""

from __future__ import annotations

import logging
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.helpdesk.base import Forged
from bot.helpdesk.intercom.door import IntercomDoor
from bot.helpdesk.payloads import json_object
from bot.helpdesk.signatures import verify
from bot.services import Services
from bot.settings import IntercomSettings

log = logging.getLogger(__name__)

SIGNATURE = "X-Body-Signature"
INITIALIZE = "/helpdesk/intercom/initialize"
SUBMIT = "/helpdesk/intercom/submit"


def check_signature(body: bytes, given: str | None, client_secret: str | None) -> None:
    """Raise `Forged` unless `given` is the hex HMAC-SHA256 of `body` with the client secret."""
    verify(given, client_secret, body, algorithm="sha256", encoding="hex", what=SIGNATURE)


def routes(settings: IntercomSettings) -> list[Route]:
    """The inbox app's routes, when a client secret is configured to check its requests."""
    if settings.client_secret is None:
        return []
    secret = settings.client_secret.get_secret_value()
    door = IntercomDoor(settings)

    async def answer(request: Request, step: str) -> JSONResponse:
        body = await request.body()
        try:
            check_signature(body, request.headers.get(SIGNATURE), secret)
        except Forged as exc:
            log.warning("Intercom %s request refused: %s", step, exc)
            return JSONResponse({"error": "not a genuine Intercom request"}, status_code=401)
        payload = json_object(body)
        if not payload:
            return JSONResponse({"error": "a Canvas Kit request is a JSON object"}, status_code=400)
        services: Services = request.app.state.services
        door.serve(services)
        try:
            if step == "initialize":
                canvas = await door.initialize(payload)
            else:
                canvas = await door.submit(payload)
        except Exception:
            # Whatever broke, Intercom gets a canvas that says so (a 500 shows nothing).
            incident = secrets.token_hex(4)
            log.exception("Intercom %s failed (incident %s)", step, incident)
            said = f"That failed on our side (incident {incident}); check `/billing approvals` before trying again."
            canvas = {"content": {"components": [{"type": "text", "text": said, "style": "error"}]}}
        return JSONResponse({"canvas": canvas})

    async def initialize(request: Request) -> JSONResponse:
        return await answer(request, "initialize")

    async def submit(request: Request) -> JSONResponse:
        return await answer(request, "submit")

    return [
        Route(INITIALIZE, initialize, methods=["POST"]),
        Route(SUBMIT, submit, methods=["POST"]),
    ]
