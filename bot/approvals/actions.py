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

from bot.gateways.base import Gateway

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


async def _run_refund(gateway: Gateway, view: ApprovalView, key: str) -> str:
    assert view.amount is not None
    refund = await gateway.refund(
        view.target_id, view.amount, reason=view.reason, idempotency_key=key
    )
    return refund.id


async def _refund_is_stale(gateway: Gateway, view: ApprovalView) -> bool:
    """Another refund landing first is no reason to refuse one that still fits: only an amount
    above what remains refundable (a full refund after a partial one, say) goes stale."""
    if view.amount is None:
        return False
    refundable = (await gateway.get_charge(view.target_id)).refundable
    return refundable.currency != view.amount.currency or view.amount.minor > refundable.minor


register(ActionKind(
    "refund", target="charge", run=_run_refund, describe=_plain, again=_amount_again,
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


async def _run_cancel(gateway: Gateway, view: ApprovalView, key: str) -> str:
    sub = await gateway.cancel_subscription(
        view.target_id, at_period_end=_at_period_end(view), reason=view.reason, idempotency_key=key
    )
    return sub.id


def _describe_cancel(view: ApprovalView, locale: str) -> str:
    return f"Cancel {view.target_id} {'at period end' if _at_period_end(view) else 'now'}"


register(ActionKind(
    "cancel", target="subscription", run=_run_cancel, describe=_describe_cancel,
    again=lambda view: {"when": "period-end" if _at_period_end(view) else "now"},
))  # fmt: skip
