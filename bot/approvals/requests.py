"""The approval workflow as commands use it: submit a request, decide on one."""

from __future__ import annotations

from bot.actors import Actor
from bot.approvals.duplicates import check_not_duplicate, one_at_a_time
from bot.approvals.executor import execute, run_claimed
from bot.approvals.workflow import ActionRequest, ApprovalView, State, create, vote
from bot.errors import UserError
from bot.money import Money
from bot.services import Services


async def submit(
    services: Services, actor: Actor, request: ActionRequest, *, again: str | None = None
) -> ApprovalView:
    """Check the policy, record the request, and run it at once when the actor may act alone.

    The same request made again by the same person soon after raises DuplicateRequest,
    unless `again` names the earlier request the person knowingly repeats.
    """
    rules = services.policy.for_action(request.action)
    if not rules.may_request(actor):
        allowed = ", ".join(r.value for r in rules.requesters)
        raise UserError("forbidden", f"{request.action} may be requested by: {allowed}")
    if rules.reason_codes and request.reason_code not in rules.reason_codes:
        raise UserError(
            "reason_code",
            f"start the reason with one of: {', '.join(rules.reason_codes)} (e.g. reason: {rules.reason_codes[0]} ...)",
        )
    decision = services.policy.decide(
        request.action, actor, request.amount, request.params.get("percent_off")
    )
    alone, why = decision.alone, decision.why
    if alone and request.params.get("coupon") and request.action != "coupon":
        # A coupon that comes with another action (a subscription started with one) is
        # held to the [coupon] caps too: nobody gives alone a discount they could not apply.
        off = request.params.get("coupon_amount_off")
        coupon = services.policy.decide(
            "coupon", actor, Money.model_validate(off) if off else None,
            request.params.get("coupon_percent_off"),
        )  # fmt: skip
        if not coupon.alone:
            alone, why = False, f"the coupon: {coupon.why}"
    budget_day = None
    if alone and decision.budget is not None and request.amount is not None:
        day = services.budgets.today()
        # Per person, not per platform identity: alex in the shell and on Slack share one budget.
        who = services.policy.person(actor.key)
        if await services.budgets.spend(who, request.amount, decision.budget, day=day):
            budget_day = day
        else:
            alone = False
            why = f"your daily budget of {decision.budget.format()} is used up: needs approval"
    try:
        async with one_at_a_time(services, request):
            if again is None:
                await check_not_duplicate(services, actor, request)
            else:
                why = f"{why} (asked again after {again})"
            view = await create(
                services, actor, request, auto=alone, why=why, budget_day=budget_day
            )
    except BaseException:
        if budget_day is not None and request.amount is not None:  # no request holds it
            await services.budgets.give_back(
                services.policy.person(actor.key), request.amount, day=budget_day
            )
        raise
    if not alone:
        return view
    # A failed or stale run gives the budget back itself (executor._finish), whoever ran it.
    return await execute(services, view.id, actor)


async def decide(
    services: Services, actor: Actor, approval_id: str, *, approve: bool, reason: str | None = None
) -> ApprovalView:
    """Approve or deny; the last approval needed runs the action (once, whoever clicks)."""
    if not approve and not (reason and reason.strip()):
        raise UserError("reason_required", "a denial needs a reason: deny <id> reason: <text>")
    # The deciding approval claims the request in its own transaction (`executing`):
    # only the one voter whose vote decided it runs it.
    view = await vote(services, actor, approval_id, approve=approve, reason=reason, start=True)
    if view.state == State.executing:
        view = await run_claimed(services, view, actor)
    elif view.state == State.approved:  # decided but not claimed: the conditional claim decides
        view = await execute(services, view.id, actor)
    await services.announce(view.id, actor)
    return view
