"""What every money-moving command shares: reason codes, submitting, and the reply."""

from __future__ import annotations

from bot.approvals.service import submit
from bot.approvals.workflow import ActionRequest, ApprovalView, State
from bot.cards.billing import approval_card
from bot.cards.model import ApprovalRef, ErrorInfo, Reply
from bot.commands.router import Context
from bot.errors import UserError
from bot.money import Money, MoneyError, parse_money


def reason_code(ctx: Context, action: str, reason: str) -> str | None:
    """The policy reason code the reason starts with, if the policy has codes."""
    codes = ctx.services.policy.for_action(action).reason_codes
    first = reason.split(maxsplit=1)[0].lower().rstrip(":,") if reason else ""
    return first if first in codes else None


def amount_in(text: str | None, currency: str) -> Money | None:
    """Parse an amount in the object's currency; None means the whole amount."""
    if text is None:
        return None
    try:
        return parse_money(text, currency)
    except MoneyError as exc:
        raise UserError("invalid_amount", str(exc)) from None


async def request_action(ctx: Context, request: ActionRequest) -> Reply:
    """Submit through the approval workflow and answer with the request's card."""
    view = await submit(
        ctx.services, ctx.actor, request.model_copy(update={"channel": ctx.channel.id})
    )
    return approval_reply(ctx, view)


def approval_reply(ctx: Context, view: ApprovalView, note: str | None = None) -> Reply:
    reply = Reply(
        cards=[approval_card(view, locale=ctx.services.settings.locale, note=note)],
        approval=ApprovalRef(id=view.id, state=view.state.value),
    )
    if view.state == State.failed:
        # Recorded and audited, but the money did not move: say so as an error too.
        reply.error = ErrorInfo(
            code=view.error_code or "failed", message=view.error_message or "the gateway refused"
        )
    return reply
