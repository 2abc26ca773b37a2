"""Rules every gateway and every command apply before money moves.

Commands run them first so a bad request is refused before anyone is asked to
approve it; gateways run them again at execution, when it counts.
"""

from __future__ import annotations

from bot.gateways.base import ErrorCode, GatewayError
from bot.models import Charge, ChargeStatus, Dispute, DisputeStatus
from bot.money import Money


def check_refund(charge: Charge, amount: Money) -> None:
    same_currency(charge, amount)
    if charge.status == ChargeStatus.refunded:
        raise GatewayError(
            ErrorCode.already_refunded,
            f"charge {charge.id} is already fully refunded",
            gateway=charge.gateway,
        )
    if charge.status == ChargeStatus.disputed:
        raise GatewayError(
            ErrorCode.charge_disputed,
            f"charge {charge.id} is disputed: answer the dispute instead of refunding",
            gateway=charge.gateway,
        )
    if charge.status == ChargeStatus.authorized:
        raise GatewayError(
            ErrorCode.not_settled,
            f"charge {charge.id} is only authorized: void it instead of refunding",
            gateway=charge.gateway,
        )
    if charge.status not in (ChargeStatus.succeeded, ChargeStatus.partially_refunded):
        raise GatewayError(
            ErrorCode.invalid_state,
            f"charge {charge.id} is {charge.status.value}: nothing to refund",
            gateway=charge.gateway,
        )
    if amount.minor > charge.refundable.minor:
        raise GatewayError(
            ErrorCode.amount_too_large,
            f"cannot refund {amount.format()}: only {charge.refundable.format()} of charge "
            f"{charge.id} remains refundable",
            gateway=charge.gateway,
        )


def same_currency(charge: Charge, amount: Money) -> None:
    if amount.currency != charge.amount.currency:
        raise GatewayError(
            ErrorCode.currency_mismatch,
            f"charge {charge.id} is in {charge.amount.currency}, not {amount.currency}",
            gateway=charge.gateway,
        )


def require_status(charge: Charge, status: ChargeStatus, verb: str) -> None:
    if charge.status != status:
        raise GatewayError(
            ErrorCode.invalid_state,
            f"charge {charge.id} is {charge.status.value}: only {status.value} charges can be {verb}",
            gateway=charge.gateway,
        )


def require_unanswered(dispute: Dispute) -> None:
    """Only a dispute still waiting for our answer is accepted or answered: never twice."""
    if dispute.status != DisputeStatus.needs_response:
        raise GatewayError(
            ErrorCode.invalid_state,
            f"dispute {dispute.id} is {dispute.status.value.replace('_', ' ')}: it was answered "
            "or decided already, and nothing is sent twice",
            gateway=dispute.gateway,
        )


def check_capture(charge: Charge, amount: Money | None) -> None:
    require_status(charge, ChargeStatus.authorized, "captured")
    if amount is not None:
        same_currency(charge, amount)
        if amount.minor > charge.amount.minor:
            raise GatewayError(
                ErrorCode.amount_too_large,
                f"cannot capture {amount.format()}: only {charge.amount.format()} is authorized",
                gateway=charge.gateway,
            )
