"""The ledger's forward webhook: each action sent, signed, to the business, whose answer decides.

The body is canonical JSON (sorted keys) of the action, its idempotency key, the
target row as it was read and the action's own fields; the signature header is
`t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, as in Stripe's scheme, so a
partner can verify it with code they already have.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pydantic import BaseModel

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.ledger.mapping import NAME
from bot.money import Money, exponent

SIGNATURE_HEADER = "X-ChargeDesk-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, as in Stripe's scheme."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Forwarder(BaseModel):
    """Where actions are sent for the business to carry out, and how they are signed."""

    url: str
    secret: str
    timeout: float = 10.0


class ForwardAnswer(BaseModel):
    """What the business answers a forwarded action with."""

    status: str
    reference: str | None = None
    code: str | None = None
    message: str | None = None


class Forwarding:
    """The HTTP side of a Forwarder: one client, one signed POST per action."""

    def __init__(self, forwarder: Forwarder) -> None:
        import httpx  # here, not at the top: only a ledger with a forward_url needs it

        self.forwarder = forwarder
        self._http = httpx.AsyncClient(timeout=forwarder.timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(
        self, action: str, key: str, target_id: str, target: dict[str, Any], payload: dict[str, Any]
    ) -> str | None:
        """The business's reference for the action it carried out; GatewayError if it did not."""
        import httpx

        body = json.dumps(
            {
                "type": action,
                "idempotency_key": key,
                "target_id": target_id,
                "object": target,
                **payload,
            },
            sort_keys=True,
            default=str,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            SIGNATURE_HEADER: sign(self.forwarder.secret, body, int(time.time())),
        }
        try:
            response = await self._http.post(self.forwarder.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise GatewayError(
                ErrorCode.timeout, "the forward endpoint did not answer in time", gateway=NAME
            ) from None
        except httpx.HTTPError as exc:
            raise GatewayError(
                ErrorCode.unavailable,
                f"the forward endpoint could not be reached ({type(exc).__name__})",
                gateway=NAME,
            ) from None
        if response.status_code >= 500:
            raise GatewayError(
                ErrorCode.unavailable,
                f"the forward endpoint failed with HTTP {response.status_code}",
                gateway=NAME,
                raw_code=str(response.status_code),
            )
        try:
            answer = ForwardAnswer.model_validate_json(response.content)
        except ValueError:
            raise GatewayError(
                ErrorCode.unavailable,
                f"the forward endpoint answered HTTP {response.status_code} without a JSON result",
                gateway=NAME,
                raw_code=str(response.status_code),
            ) from None
        if response.status_code >= 300 or answer.status != "succeeded":
            raise GatewayError(
                ErrorCode.rejected,
                f"the business declined the {action}: {answer.message or answer.code or answer.status}",
                gateway=NAME,
                raw_code=answer.code,
                raw_message=answer.message,
            )
        return answer.reference


def money_json(amount: Money) -> dict[str, Any]:
    # The exponent and the decimal string travel with the integer, so a partner
    # system never has to guess how many digits a currency has.
    """Money as the forward webhook sends it: minor units, currency, exponent and decimal text."""
    return {
        "minor": amount.minor,
        "currency": amount.currency,
        "exponent": exponent(amount.currency),
        "value": f"{amount.decimal}",
    }


def snapshot(row: Any) -> dict[str, Any]:
    """A row as the forward webhook sends it; integer amounts are in `exponent` digits."""
    snapshot = {c.name: getattr(row, c.key) for c in row.__table__.columns}
    if snapshot.get("currency"):
        snapshot["exponent"] = exponent(snapshot["currency"])
    return snapshot
