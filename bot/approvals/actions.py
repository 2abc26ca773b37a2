"""Every action the approval workflow can run, each described once.

An action is what a request asks for (`refund`, `cancel`, …): the command that asks for it
builds an `ActionRequest`; the policy has a table of the same name in `policy.toml`; and the
entry here says what the rest of the bot needs to know of it: which object its command names,
how the executor runs it at the gateway, whether an approved request can go stale, how a card
describes it, and which arguments `again` gives its command to ask for it once more.

To add an action: its command, an entry here, a field in `Policy` and a table in `policy.toml`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.disputes.evidence import Evidence
from bot.gateways.base import Gateway, GatewayError
from bot.gateways.termination import PlannedRefund
from bot.models import Address, DisputeStatus, PlanChange
from bot.money import Money

if TYPE_CHECKING:
    from bot.approvals.workflow import ApprovalView

# (gateway, approved request, idempotency key) -> the ID of what the gateway made or changed.
Runner = Callable[[Gateway, "ApprovalView", str], Awaitable[str]]


@dataclass(frozen=True)
class ActionKind:
    """One action: `target` is the argument its command names the object with."""

    name: str
    target: str
    run: Runner
    describe: Callable[[ApprovalView, str], str]
    # Arguments besides target and reason that `again` passes to the command.
    again: Callable[[ApprovalView], dict[str, Any]] = field(default=lambda view: {})
    # Read under the target's lock just before running: True if the request no longer fits.
    stale: Callable[[Gateway, ApprovalView], Awaitable[bool]] | None = None
    # The policy table whose limits and daily budget decide a request of this action that
    # carries an amount (a cancellation that refunds: `refund`); None: its own table.
    amount_rules: str | None = None
    # What the audit entry says of a request that went stale.
    stale_why: str = "the amount no longer fits what is refundable on the charge"


ACTIONS: dict[str, ActionKind] = {}


def register(kind: ActionKind) -> ActionKind:
    ACTIONS[kind.name] = kind
    return kind


def kind_of(name: str) -> ActionKind:
    """The action named `name`; KeyError for one the bot does not know."""
    return ACTIONS[name]


def _amount_of(view: ApprovalView, locale: str) -> str:
    return f" of {view.amount.format(locale)}" if view.amount else ""


def _plain(view: ApprovalView, locale: str) -> str:
    """`Refund of €12.50 on ch_1`"""
    return f"{view.action.capitalize()}{_amount_of(view, locale)} on {view.target_id}"


def _amount_again(view: ApprovalView) -> dict[str, Any]:
    return {"amount": view.amount.plain()} if view.amount is not None else {}


# --- refund ---------------------------------------------------------------------------


def _by_hand(view: ApprovalView) -> bool:
    """`refund … manual`: the team paid it back by hand, the gateway only records it."""
    return view.params.get("method") == "manual"


async def _run_refund(gateway: Gateway, view: ApprovalView, key: str) -> str:
    assert view.amount is not None
    run = gateway.record_manual_refund if _by_hand(view) else gateway.refund
    refund = await run(view.target_id, view.amount, reason=view.reason, idempotency_key=key)
    return refund.id


def _describe_refund(view: ApprovalView, locale: str) -> str:
    """`Refund of €12.50 on ch_1`, or a record of one paid back by hand, saying so."""
    if not _by_hand(view):
        return _plain(view, locale)
    return (
        f"Record a refund{_amount_of(view, locale)} on {view.target_id} paid back by hand "
        f"(no money moves at {view.gateway})"
    )


def _again_refund(view: ApprovalView) -> dict[str, Any]:
    return _amount_again(view) | ({"method": "manual"} if _by_hand(view) else {})


async def _refund_is_stale(gateway: Gateway, view: ApprovalView) -> bool:
    """Another refund landing first is no reason to refuse one that still fits: only an amount
    above what remains refundable (a full refund after a partial one, say) goes stale."""
    if view.amount is None:
        return False
    return await _above_refundable(gateway, view.target_id, view.amount)


async def _above_refundable(gateway: Gateway, charge_id: str, amount: Money) -> bool:
    refundable = (await gateway.get_charge(charge_id)).refundable
    return refundable.currency != amount.currency or amount.minor > refundable.minor


register(ActionKind(
    "refund", target="charge", run=_run_refund, describe=_describe_refund, again=_again_refund,
    stale=_refund_is_stale,
))  # fmt: skip


# --- capture and void -----------------------------------------------------------------


async def _run_capture(gateway: Gateway, view: ApprovalView, key: str) -> str:
    return (await gateway.capture(view.target_id, view.amount, idempotency_key=key)).id


async def _run_void(gateway: Gateway, view: ApprovalView, key: str) -> str:
    return (await gateway.void(view.target_id, idempotency_key=key)).id


register(ActionKind(
    "capture", target="charge", run=_run_capture, describe=_plain, again=_amount_again
))  # fmt: skip
register(ActionKind("void", target="charge", run=_run_void, describe=_plain))


# --- cancel ---------------------------------------------------------------------------


def _at_period_end(view: ApprovalView) -> bool:
    return bool(view.params.get("at_period_end", True))


def planned_refund(view: ApprovalView) -> PlannedRefund | None:
    """The refund a `cancel ... now and-refund` request makes, as worked out when it was asked
    (`refund_charge` and the amount); None for a cancellation without one."""
    mode, charge = view.params.get("refund", "none"), view.params.get("refund_charge")
    if mode == "none" or not charge or view.amount is None:
        return None
    return PlannedRefund(charge_id=charge, amount=view.amount, mode=mode)


async def _run_cancel(gateway: Gateway, view: ApprovalView, key: str) -> str:
    """The subscription's ID; for a cancellation with a refund, the refund's ID."""
    refund = planned_refund(view)
    if refund is not None:
        made = await gateway.cancel_and_refund(
            view.target_id, refund, reason=view.reason, idempotency_key=key
        )
        return made.id
    sub = await gateway.cancel_subscription(
        view.target_id, at_period_end=_at_period_end(view), reason=view.reason, idempotency_key=key
    )
    return sub.id


def _describe_cancel(view: ApprovalView, locale: str) -> str:
    """`Cancel sub_1 now and refund €12.50 (prorated) of ch_9`"""
    said = f"Cancel {view.target_id} {'at period end' if _at_period_end(view) else 'now'}"
    refund = planned_refund(view)
    if refund is None:
        return said
    return f"{said} and refund {refund.amount.format(locale)} ({refund.mode}) of {refund.charge_id}"


async def _cancel_refund_is_stale(gateway: Gateway, view: ApprovalView) -> bool:
    """A refund on cancelling goes stale like a refund: when its charge has less left."""
    refund = planned_refund(view)
    return refund is not None and await _above_refundable(gateway, refund.charge_id, refund.amount)


def _cancel_again(view: ApprovalView) -> dict[str, Any]:
    return {"when": "period-end" if _at_period_end(view) else "now"} | (
        {"refund": view.params["refund"]} if planned_refund(view) is not None else {}
    )


register(ActionKind(
    "cancel", target="subscription", run=_run_cancel, describe=_describe_cancel,
    again=_cancel_again, stale=_cancel_refund_is_stale, amount_rules="refund",
))  # fmt: skip


# --- subscriptions: subscribe, plan, pause, resume ------------------------------------
# Their params carry what a card needs to say without asking the gateway again.


def _every(interval: str) -> str:
    return {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}.get(
        interval, f"every {interval}"
    )


def _money(raw: Any, locale: str) -> str:
    return Money.model_validate(raw).format(locale)


async def _run_subscribe(gateway: Gateway, view: ApprovalView, key: str) -> str:
    p = view.params
    sub = await gateway.create_subscription(
        view.target_id, p["price"], idempotency_key=key, quantity=p.get("quantity", 1),
        trial_days=p.get("trial_days"), coupon=p.get("coupon"),
    )  # fmt: skip
    return sub.id


def _describe_subscribe(view: ApprovalView, locale: str) -> str:
    """`Subscribe cus_1 to Pro × 2: €60.00 monthly, 14-day trial, coupon SPRING`"""
    p = view.params
    what = f"Subscribe {view.target_id} to {p.get('plan') or p['price']}"
    if p.get("quantity", 1) != 1:
        what += f" × {p['quantity']}"
    if "recurring" in p:
        what += f": {_money(p['recurring'], locale)} {_every(p.get('interval', 'month'))}"
    if p.get("trial_days"):
        what += f", {p['trial_days']}-day trial"
    if p.get("coupon"):
        what += f", coupon {p['coupon']}"
    return what


def _subscribe_again(view: ApprovalView) -> dict[str, Any]:
    p = view.params
    again: dict[str, Any] = {"price": p["price"], "quantity": p.get("quantity", 1)}
    if p.get("trial_days"):
        again["trial"] = f"{p['trial_days']}d"
    if p.get("coupon"):
        again["coupon"] = p["coupon"]
    return again


register(ActionKind(
    "subscribe", target="customer", run=_run_subscribe, describe=_describe_subscribe,
    again=_subscribe_again,
))  # fmt: skip


def _change_of(view: ApprovalView) -> PlanChange:
    return PlanChange.model_validate(view.params["preview"])


def describe_change(change: PlanChange, locale: str) -> str:
    """`Pro plan from now: charged €12.34 today (prorated), then €30.00 monthly`; at
    renewal `Pro plan from 2027-01-06: €30.00 monthly, nothing charged today`."""
    if not change.now and change.starts_at is not None:
        return (
            f"{change.plan} plan from {change.starts_at:%Y-%m-%d}: "
            f"{change.recurring.format(locale)} {_every(change.interval)}, nothing charged today"
        )
    when = "from now" if change.now else "from renewal"
    due = change.due_now
    if due.minor > 0:
        today = f"charged {due.format(locale)} today"
    elif due.minor < 0:
        today = f"credited {Money(minor=-due.minor, currency=due.currency).format(locale)} today"
    else:
        today = "nothing charged today"
    how = "prorated" if change.prorate and change.now else "no proration"
    return (
        f"{change.plan} plan {when}: {today} ({how}), "
        f"then {change.recurring.format(locale)} {_every(change.interval)}"
    )


async def _run_plan(gateway: Gateway, view: ApprovalView, key: str) -> str:
    return (await gateway.change_plan(_change_of(view), idempotency_key=key)).id


async def _plan_is_stale(gateway: Gateway, view: ApprovalView) -> bool:
    """The same preview, as of the same instant, must still give the same amounts: a plan,
    quantity, period or price changed since makes it stale."""
    asked = _change_of(view)
    try:
        fresh = await gateway.preview_plan_change(
            asked.subscription_id, asked.price, now=asked.now, prorate=asked.prorate, at=asked.at
        )
    except GatewayError:
        # No preview, no change: a plan archived, a subscription ended, a gateway away.
        return True
    return (fresh.due_now, fresh.recurring) != (asked.due_now, asked.recurring)


def _plan_again(view: ApprovalView) -> dict[str, Any]:
    change = _change_of(view)
    return {
        "price": change.price,
        "when": "now" if change.now else "renewal",
        "proration": "prorate" if change.prorate else "none",
    }


register(ActionKind(
    "plan", target="subscription", run=_run_plan,
    describe=lambda view, locale: f"{describe_change(_change_of(view), locale)} ({view.target_id})",
    again=_plan_again, stale=_plan_is_stale,
    stale_why="what the plan change costs is no longer what was previewed",
))  # fmt: skip


async def _run_pause(gateway: Gateway, view: ApprovalView, key: str) -> str:
    return (await gateway.set_paused(view.target_id, True, idempotency_key=key)).id


async def _run_resume(gateway: Gateway, view: ApprovalView, key: str) -> str:
    return (await gateway.set_paused(view.target_id, False, idempotency_key=key)).id


register(ActionKind(
    "pause", target="subscription", run=_run_pause,
    describe=lambda view, locale: f"Pause payments on {view.target_id}",
))  # fmt: skip
register(ActionKind(
    "resume", target="subscription", run=_run_resume,
    describe=lambda view, locale: f"Resume payments on {view.target_id}",
))  # fmt: skip


# --- dispute (accept, or answer with evidence) ----------------------------------------


async def _run_dispute(gateway: Gateway, view: ApprovalView, key: str) -> str:
    if view.params.get("step") == "accept":
        return (await gateway.accept_dispute(view.target_id, idempotency_key=key)).id
    evidence = Evidence.model_validate(view.params["evidence"])
    return (await gateway.submit_dispute_evidence(view.target_id, evidence, idempotency_key=key)).id


async def _dispute_is_stale(gateway: Gateway, view: ApprovalView) -> bool:
    """Answered meanwhile (evidence sent, accepted, decided): nothing is sent twice."""
    return (await gateway.get_dispute(view.target_id)).status != DisputeStatus.needs_response


def _describe_dispute(view: ApprovalView, locale: str) -> str:
    if view.params.get("step") == "accept":
        return f"Accept dispute {view.target_id}{_amount_of(view, locale)} (the customer keeps it)"
    evidence = Evidence.model_validate(view.params["evidence"])
    return f"Evidence for dispute {view.target_id}{_amount_of(view, locale)} ({evidence.summary()})"


register(ActionKind(
    "dispute", target="dispute", run=_run_dispute, describe=_describe_dispute,
    again=lambda view: {"step": view.params.get("step", "evidence")}, stale=_dispute_is_stale,
    stale_why="the dispute was answered or decided since the request",
))  # fmt: skip


# --- coupon (apply a coupon, or remove the discount) ----------------------------------
# params: {"code", "coupon": its description when asked, "percent_off"} or {"remove": True}.


async def _run_coupon(gateway: Gateway, view: ApprovalView, key: str) -> str:
    if view.params.get("remove"):
        await gateway.remove_discount(view.target_id, idempotency_key=key)
    else:
        await gateway.apply_coupon(view.target_id, view.params["code"], idempotency_key=key)
    return view.target_id  # what changed: the customer or subscription now (not) discounted


async def _coupon_is_stale(gateway: Gateway, view: ApprovalView) -> bool:
    """The coupon now takes off something else than the approvers were shown."""
    if view.params.get("remove"):
        return False
    try:
        found = await gateway.coupon(view.params["code"], currency=view.params.get("currency"))
        return found.describe() != view.params["coupon"]
    except GatewayError:
        return False  # gone: applying it fails with the gateway's own words


def _describe_coupon(view: ApprovalView, locale: str) -> str:
    if view.params.get("remove"):
        return f"Remove the discount on {view.target_id}"
    return f"Coupon {view.params['coupon']} on {view.target_id}"


register(ActionKind(
    "coupon", target="target", run=_run_coupon, describe=_describe_coupon,
    again=lambda view: {"code": "remove" if view.params.get("remove") else view.params["code"]},
    stale=_coupon_is_stale, stale_why="the coupon takes off something else than when asked",
))  # fmt: skip


# --- charge: the customer's saved card, off session (bot/commands/charge.py) ------------


async def _run_charge(gateway: Gateway, view: ApprovalView, key: str) -> str:
    assert view.amount is not None
    charge = await gateway.charge_saved_card(
        view.target_id, view.amount, description=view.params["description"], idempotency_key=key
    )
    return charge.id


register(ActionKind(
    "charge", target="customer", run=_run_charge,
    describe=lambda view, locale: (
        f"Charge{_amount_of(view, locale)} to {view.target_id}'s saved card: "
        f"{view.params['description']}"
    ),
    again=lambda view: {**_amount_again(view), "description": view.params["description"]},
))  # fmt: skip


# --- customer details: tax ID, billing address, name (bot/commands/customer_details.py) --
# A succeeded one may re-issue this month's documents (bot/documents/reissue.py).


async def _run_tax_id(gateway: Gateway, view: ApprovalView, key: str) -> str:
    p = view.params
    if p.get("mode") == "remove":
        return await gateway.remove_tax_id(view.target_id, p["tax_id"], idempotency_key=key)
    added = await gateway.add_tax_id(
        view.target_id, p["tax_id"], idempotency_key=key, replace=p.get("mode") == "replace"
    )
    return added.id


def _describe_tax_id(view: ApprovalView, locale: str) -> str:
    number, mode = view.params["tax_id"], view.params.get("mode", "add")
    if mode == "remove":
        return f"Remove tax ID {number} from {view.target_id}"
    if mode == "replace":
        return f"Replace the tax IDs of {view.target_id} with {number}"
    return f"Add tax ID {number} to {view.target_id}"


async def _run_address(gateway: Gateway, view: ApprovalView, key: str) -> str:
    address = Address.model_validate(view.params["address"])
    return (await gateway.update_customer(view.target_id, address=address, idempotency_key=key)).id


async def _run_name(gateway: Gateway, view: ApprovalView, key: str) -> str:
    name = view.params["name"]
    return (await gateway.update_customer(view.target_id, name=name, idempotency_key=key)).id


def _address_again(address: Address) -> dict[str, Any]:
    """The `address` command's arguments: its `town` is the postal code and the city."""
    town = " ".join(p for p in (address.postal_code, address.city) if p)
    given = {"line1": address.line1, "line2": address.line2, "town": town,
             "state": address.state, "country": address.country}  # fmt: skip
    return {k: v for k, v in given.items() if v}


def _one_line_address(view: ApprovalView) -> str:
    address = Address.model_validate(view.params["address"])
    return ", ".join([*address.lines(), address.country or ""]).strip(", ")


register(ActionKind(
    "tax-id", target="customer", run=_run_tax_id, describe=_describe_tax_id,
    again=lambda view: {"tax_id": view.params["tax_id"], "mode": view.params.get("mode", "add")},
))  # fmt: skip
register(ActionKind(
    "address", target="customer", run=_run_address,
    describe=lambda view, locale: f"Billing address of {view.target_id}: {_one_line_address(view)}",
    again=lambda view: _address_again(Address.model_validate(view.params["address"])),
))  # fmt: skip
register(ActionKind(
    "name", target="customer", run=_run_name,
    describe=lambda view, locale: f"Billing name of {view.target_id}: {view.params['name']}",
    again=lambda view: {"name": view.params["name"]},
))  # fmt: skip
