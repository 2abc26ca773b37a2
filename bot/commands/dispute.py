"""`dispute`: answer a chargeback: accept it, or send the evidence we hold, behind approval."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bot.approvals.workflow import ActionRequest
from bot.cards.disputes import evidence_card
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, Asked, ObjectRef, Reason
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.disputes.gather import gather
from bot.gateways.base import Capability
from bot.gateways.checks import require_unanswered

_STEPS = {"accept": Capability.accept_dispute, "evidence": Capability.dispute_evidence}


class DisputeArgs(Args):
    dispute: ObjectRef = Field(description="dispute ID (stripe:dp_123)")
    step: Annotated[
        Literal["evidence", "accept"],
        Asked(labels={"evidence": "Send our evidence", "accept": "Accept: the customer keeps it"}),
    ] = Field(description="what to do")
    reason: Reason = Field(description="reason, for the audit log (sent with the evidence)")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@command(
    "dispute",
    args=DisputeArgs,
    usage="dispute <dispute> evidence|accept reason: <text>",
    positional=("dispute", "step"),
)
async def dispute(ctx: Context, args: DisputeArgs) -> Reply:
    """Answer a dispute (chargeback) while it needs a response.

    `dispute dp_123 evidence reason: delivered, customer used the service` gathers what the
    bot holds (our receipt and invoice PDFs, the customer's name, email and address, their
    subscription terms, refunds and the emails and tickets we have) and shows it; once a
    manager approves it is sent and submitted, once. `dispute dp_123 accept reason: …`
    accepts it: the customer keeps the money.
    """
    gateways = ctx.services.gateways
    if ":" in args.dispute:  # a named gateway without disputes says why, before any call
        gateways.get(args.dispute.split(":", 1)[0]).require(_STEPS[args.step])
    gateway, found = await gateways.locate(
        args.dispute, lambda g, object_id: g.get_dispute(object_id), "dispute"
    )
    gateway.require(_STEPS[args.step])
    require_unanswered(found)
    await gateway.precheck_dispute(found, accept=args.step == "accept")
    charge = await gateway.get_charge(found.charge_id)
    request = ActionRequest(
        action="dispute", gateway=gateway.name, target_id=found.id, customer_id=charge.customer_id,
        amount=found.amount,
        reason=args.reason, reason_code=reason_code(ctx, "dispute", args.reason),
        params={"step": args.step},
    )  # fmt: skip
    if args.step == "accept":
        return await request_action(ctx, request, again=args.again)
    evidence = await gather(ctx.services, gateway, found, args.reason)
    request.params["evidence"] = evidence.model_dump(mode="json")
    reply = await request_action(ctx, request, again=args.again)
    reply.cards.insert(0, evidence_card(found, evidence, locale=ctx.services.settings.locale))
    return reply
