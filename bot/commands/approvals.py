"""`approvals`, `approve`, `deny`: the manager's side of the workflow."""

from __future__ import annotations

from pydantic import Field

from bot.actors import SYSTEM, Role
from bot.approvals.requests import decide
from bot.approvals.workflow import State, expire_due, get, listing
from bot.cards.billing import approvals_card
from bot.cards.model import Reply
from bot.commands.args import Args, Reason
from bot.commands.requests import approval_reply
from bot.commands.router import Context, command

ApprovalId = Field(
    pattern=r"^apr_[0-9a-f]{12}$", description="an approval request ID such as apr_0a1b2c3d4e5f"
)


class ListArgs(Args):
    which: str = Field(
        "pending", pattern=r"^(pending|all|mine|apr_[0-9a-f]{12})$",
        description="pending, all, mine, or a request ID",
    )  # fmt: skip


class ApproveArgs(Args):
    id: str = ApprovalId


class DenyArgs(Args):
    id: str = ApprovalId
    reason: Reason = Field(description="why")


@command(
    "approvals", args=ListArgs, usage="approvals [pending|all|mine|<id>]", positional=("which",)
)
async def approvals(ctx: Context, args: ListArgs) -> Reply:
    """List requests waiting for approval (`all`: recent ones in any state; `mine`: yours), or show one."""
    await expire_due(ctx.services, SYSTEM)
    locale = ctx.services.settings.locale
    if args.which.startswith("apr_"):
        return approval_reply(ctx, await get(ctx.services, args.which))
    states = [State.pending] if args.which == "pending" else list(State)
    views = await listing(ctx.services, states, limit=50)
    if args.which == "mine":
        same = ctx.services.policy.same_person
        views = [v for v in views if same(v.requester_key, ctx.actor.key)]
    title = {"pending": "Waiting for approval", "all": "Recent requests", "mine": "Your requests"}[
        args.which
    ]
    return Reply(cards=[approvals_card(views, locale=locale, title=title)])


@command(
    "approve", args=ApproveArgs, usage="approve <id>", roles=(Role.manager,), positional=("id",)
)
async def approve(ctx: Context, args: ApproveArgs) -> Reply:
    """Approve a request; the last approval needed carries it out, exactly once. Not your own."""
    return approval_reply(ctx, await decide(ctx.services, ctx.actor, args.id, approve=True))


@command(
    "deny",
    args=DenyArgs,
    usage="deny <id> reason: <text>",
    roles=(Role.manager,),
    positional=("id",),
)
async def deny(ctx: Context, args: DenyArgs) -> Reply:
    """Deny a request, with the reason the requester will read. It will never run."""
    return approval_reply(
        ctx, await decide(ctx.services, ctx.actor, args.id, approve=False, reason=args.reason)
    )
