"""`again`: knowingly repeat a request of yours that looked like a duplicate."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from bot.approvals.actions import kind_of
from bot.approvals.workflow import get
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, ObjectRef
from bot.commands.router import COMMANDS, Context, command, run


class AgainArgs(Args):
    # The button on a duplicate's card carries it (or it is typed): no form asks for it.
    id: Annotated[ObjectRef, NOT_ASKED] = Field(description="the request ID, apr_…")


@command("again", args=AgainArgs, usage="again <request id>", positional=("id",))
async def again(ctx: Context, args: AgainArgs) -> Reply:
    """Ask once more for a request of yours that was answered "this looks like a duplicate".

    `again apr_0a1b2c3d4e5f` makes the same refund, capture, void or cancellation
    again (same object, amount and reason), through the same checks and policy.
    """
    earlier = await get(ctx.services, args.id)
    kind = kind_of(earlier.action)
    raw: dict[str, Any] = {
        kind.target: f"{earlier.gateway}:{earlier.target_id}",
        "reason": earlier.reason,
        "again": earlier.id,  # whose request it is, request_action checks
        **kind.again(earlier),
    }
    return await run(ctx, COMMANDS[earlier.action], raw)
