"""What every money-moving command shares: reason codes, submitting, and the reply."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from bot.approvals.duplicates import DuplicateRequest
from bot.approvals.requests import submit
from bot.approvals.workflow import ActionRequest, ApprovalView, State, get
from bot.cards.billing import approval_card
from bot.cards.model import ApprovalRef, Button, ErrorInfo, Reply
from bot.commands.router import Context
from bot.errors import UserError
from bot.money import Money, MoneyError, parse_money

# The earlier request a person knowingly repeats: set by `again <id>`, never typed as an argument.
AgainRef = Annotated[str, StringConstraints(pattern=r"^apr_[0-9a-f]{6,32}$")]


def reason_code(ctx: Context, action: str, reason: str) -> str | None:
    """The policy reason code the reason starts with, if the policy has codes."""
    codes = ctx.services.policy.for_action(action).reason_codes
    first = reason.split(maxsplit=1)[0].lower().rstrip(":,") if reason else ""
    return first if first in codes else None


def amount_in(text: str | None, currency: str | None) -> Money | None:
    """Parse an amount in the object's currency (None: the text names one); None means the
    whole amount."""
    if text is None:
        return None
    try:
        return parse_money(text, currency)
    except MoneyError as exc:
        raise UserError("invalid_amount", str(exc)) from None


async def request_action(ctx: Context, request: ActionRequest, again: str | None = None) -> Reply:
    """Submit through the approval workflow and answer with the request's card.

    A repeat of a recent identical request of this person's is not made: the answer
    asks, with the earlier request's card and a button that runs `again <its id>`.
    """
    if again is not None:
        earlier = await get(ctx.services, again)
        if not ctx.services.policy.same_person(ctx.actor.key, earlier.requester_key):
            raise UserError(
                "forbidden", f"{again} is not your request: only its requester repeats it"
            )
    try:
        view = await submit(
            ctx.services, ctx.actor, request.model_copy(update={"channel": ctx.channel.id}),
            again=again,
        )  # fmt: skip
    except DuplicateRequest as exc:
        locale = ctx.services.settings.locale
        card = approval_card(
            exc.earlier, locale=locale, note=f"You asked for this already: {exc.earlier.id}"
        )
        verb = exc.earlier.action.capitalize()
        card.actions = [
            Button(label=f"{verb} again", command=f"again {exc.earlier.id}", style="danger")
        ]
        return Reply(error=ErrorInfo(code=exc.code, message=exc.message), cards=[card])
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
