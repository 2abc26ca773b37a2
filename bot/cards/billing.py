"""Billing objects as neutral cards: the customer card, approval cards, audit tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bot.approvals.actions import kind_of
from bot.approvals.workflow import ApprovalView, State
from bot.cards.disputes import dispute_buttons
from bot.cards.model import Button, Card, Fact, Section, Table, Tone
from bot.gateways.asking import NOT_ASKED
from bot.models import (
    BillingProfile,
    Charge,
    ChargeStatus,
    DisputeStatus,
    GatewayProfile,
    Invoice,
    InvoiceStatus,
    Subscription,
    SubscriptionStatus,
)
from bot.money import Money
from bot.store.tables import AuditEntry

_CHARGE_TONE: dict[ChargeStatus, str] = {
    ChargeStatus.disputed: "⚠ disputed",
    ChargeStatus.failed: "✗ failed",
    ChargeStatus.authorized: "◌ authorized",
}
_STATE_TONE: dict[State, Tone] = {
    State.pending: "warning",
    State.approved: "normal",
    State.executing: "warning",
    State.succeeded: "success",
    State.failed: "danger",
    State.denied: "danger",
    State.expired: "muted",
    State.stale: "muted",
}


def day(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d}" if value else "—"


def profile_card(profile: BillingProfile, *, locale: str, max_rows: int = 10) -> Card:
    """The customer card: who, where, what they paid, what is open, what is disputed."""
    gateways = sorted({p.gateway for p in profile.profiles})
    ids = ", ".join(f"{p.gateway}:{p.customer.id}" for p in profile.profiles)
    ltv = ", ".join(m.format(locale) for m in profile.lifetime_value()) or "—"
    sections = [
        Section(facts=[
            Fact(label="Email", value=profile.email or "—"),
            Fact(label="Customer", value=ids or "—"),
            Fact(label="Gateways", value=", ".join(gateways) or "—"),
            Fact(label="Lifetime value", value=ltv),
        ])
    ]  # fmt: skip
    sections += [
        Section(title=f"{f.gateway}: unavailable", text=f"{f.message} ({f.code})", tone="danger")
        if f.code != NOT_ASKED
        else Section(title=f"{f.gateway}: not asked", text=f.message, tone="muted")
        for f in profile.failures
    ]
    disputes = profile.disputes()
    if disputes:
        sections.append(Section(
            title=f"Disputes ({len(disputes)})", tone="danger",
            table=Table(columns=["Dispute", "Charge", "Amount", "Reason", "Status", "Evidence due"], rows=[
                [d.id, d.charge_id, d.amount.format(locale), d.reason, d.status.value, day(d.evidence_due_by)]
                for d in disputes
            ]),
        ))  # fmt: skip
    charges = profile.charges()
    if charges:
        sections.append(Section(
            title=f"Charges ({len(charges)})",
            table=Table(columns=["Charge", "Date", "Amount", "Refunded", "Status", "Description"], rows=[
                [c.id, day(c.created), _charged(c, locale),
                 c.refunded.format(locale) if c.amount_refunded else "", _CHARGE_TONE.get(c.status, c.status.value),
                 c.description or ""]
                for c in charges[:max_rows]
            ], more=max(0, len(charges) - max_rows)),
        ))  # fmt: skip
    subs = profile.subscriptions()
    sections += subscriptions_section(subs, locale, _sub_status)
    discounts = [d for p in profile.profiles for d in p.discounts]
    if discounts:  # as the gateway words them: `WELCOME10: 10% off for 3 months`
        sections.append(Section(title=f"Discounts ({len(discounts)})", text="\n".join(discounts)))
    sections += invoices_section(profile.invoices(), locale, max_rows, overdue="⚠ overdue")
    return Card(
        title=profile.name or profile.email or profile.query,
        subtitle=f"Billing profile for {profile.query}",
        tone="danger" if disputes else "normal",
        sections=sections,
        actions=_charge_actions(charges) + _subscription_actions(subs) + _coupon_actions(subs)
        + _lifecycle_actions(subs, profile) + _payment_actions(profile.profiles)
        + [b for d in disputes if d.status == DisputeStatus.needs_response
           for b in dispute_buttons(d.gateway, d.id)][:4]
        + _details_actions(profile.profiles[:1]),
    )  # fmt: skip


def subscriptions_section(
    subs: Sequence[Subscription], locale: str, status: Callable[[SubscriptionStatus, bool], str]
) -> list[Section]:
    """The subscriptions table, with `status` wording the status (and a pending cancellation)."""
    if not subs:
        return []
    return [Section(
        title="Subscriptions",
        table=Table(columns=["Subscription", "Plan", "Amount", "Status", "Renews / ends"], rows=[
            [s.id, s.plan + (f" → {s.next_plan} from {day(s.next_plan_from)}" if s.next_plan
                             else ""),
             f"{s.amount.format(locale)}/{s.interval}",
             status(s.status, s.cancel_at_period_end) + (", paused" if s.paused else ""),
             day(s.canceled_at if s.status == SubscriptionStatus.canceled else s.current_period_end)]
            for s in subs
        ]),
    )]  # fmt: skip


def invoices_section(
    invoices: Sequence[Invoice], locale: str, max_rows: int, *, overdue: str
) -> list[Section]:
    """The final invoices, newest first, `overdue` marking open ones past their due date."""
    shown = [i for i in invoices if i.status != InvoiceStatus.draft]
    if not shown:
        return []
    return [Section(
        title="Invoices",
        table=Table(columns=["Invoice", "Number", "Amount", "Status", "Due"], rows=[
            [i.id, i.number or "", i.amount_due.format(locale),
             overdue if i.is_overdue() else i.status.value, day(i.due_date)]
            for i in shown[:max_rows]
        ], more=max(0, len(shown) - max_rows)),
    )]  # fmt: skip


def _charged(charge: Charge, locale: str) -> str:
    """What the customer paid: a partial capture shows what was taken of what was held."""
    captured = Money(minor=charge.amount_captured, currency=charge.amount.currency)
    if (
        charge.status != ChargeStatus.authorized
        and 0 < charge.amount_captured < charge.amount.minor
    ):
        return f"{captured.format(locale)} of {charge.amount.format(locale)}"
    return charge.amount.format(locale)


def _sub_status(status: SubscriptionStatus, ending: bool) -> str:
    if ending and status != SubscriptionStatus.canceled:
        return f"{status.value}, cancels at period end"
    return {SubscriptionStatus.past_due: "⚠ past due"}.get(status, status.value)


def _charge_actions(charges: Sequence[Charge], limit: int = 3) -> list[Button]:
    buttons: list[Button] = []
    for charge in charges:
        if len(buttons) >= limit:
            break
        if charge.refundable.minor > 0:
            buttons.append(
                Button(
                    label=f"Refund {charge.id}",
                    command=f"refund {charge.gateway}:{charge.id} reason: ",
                    style="danger",
                )
            )
        elif charge.status == ChargeStatus.authorized:
            buttons.append(
                Button(
                    label=f"Capture {charge.id}",
                    command=f"capture {charge.gateway}:{charge.id} reason: ",
                    style="primary",
                )
            )
            buttons.append(
                Button(
                    label=f"Void {charge.id}", command=f"void {charge.gateway}:{charge.id} reason: "
                )
            )
    return buttons


def _payment_actions(profiles: Sequence[GatewayProfile]) -> list[Button]:
    """Charge the saved card, or email a payment request, where the customer's gateway can
    (capabilities unknown: offered, and the command decides); each form asks the amount,
    what it pays for and why."""
    buttons = []
    for p in profiles:
        ref, known = f"{p.gateway}:{p.customer.id}", p.capabilities
        which = f" ({p.gateway})" if len(profiles) > 1 else ""
        if known is None or "charge_saved_card" in known:
            buttons.append(Button(label=f"Charge{which}", command=f"charge {ref} reason: "))
        if known is None or "payment_link" in known:
            buttons.append(
                Button(label=f"Request payment{which}", command=f"request {ref} reason: ")
            )
    return buttons[:2]


def _details_actions(profiles: Sequence[GatewayProfile]) -> list[Button]:
    """The details documents print (bot/commands/customer_details.py): each form asks for them."""
    return [
        Button(label=label, command=f"{verb} {p.gateway}:{p.customer.id} reason: ")
        for p in profiles
        for verb, label in (("tax-id", "Tax ID"), ("address", "Address"), ("name", "Name"))
    ]


def _coupon_actions(subs: Sequence[Subscription]) -> list[Button]:
    """A coupon goes on a live subscription: its form asks for the code (or `remove`)."""
    return [
        Button(label=f"Coupon {s.id}", command=f"coupon {s.gateway}:{s.id} reason: ")
        for s in subs
        if s.status != SubscriptionStatus.canceled
    ][:2]


def _lifecycle_actions(subs: Sequence[Subscription], profile: BillingProfile) -> list[Button]:
    """Change plan, and Pause or Resume, on live subscriptions whose gateway can."""
    can = {p.gateway: p.capabilities for p in profile.profiles}

    def allows(sub: Subscription, capability: str) -> bool:
        known = can.get(sub.gateway)
        return known is None or capability in known

    buttons = []
    for s in subs:
        if s.status == SubscriptionStatus.canceled:
            continue
        ref = f"{s.gateway}:{s.id}"
        if allows(s, "change_plan"):
            buttons.append(Button(label=f"Change plan {s.id}", command=f"plan {ref} reason: "))
        if allows(s, "pause_subscription"):
            verb = "resume" if s.paused else "pause"
            buttons.append(
                Button(label=f"{verb.capitalize()} {s.id}", command=f"{verb} {ref} reason: ")
            )
    return buttons[:4]


def _subscription_actions(subs: Sequence[Subscription]) -> list[Button]:
    return [
        Button(
            label=f"Cancel {s.id}",
            command=f"cancel {s.gateway}:{s.id} period-end reason: ",
            style="danger",
        )
        for s in subs
        if s.status != SubscriptionStatus.canceled and not s.cancel_at_period_end
    ][:2]


def describe_action(view: ApprovalView, locale: str) -> str:
    """`Refund of €12.50 on ch_1`, `Cancel sub_1 now`: as the action's entry words it."""
    return kind_of(view.action).describe(view, locale)


def approval_card(view: ApprovalView, *, locale: str, note: str | None = None) -> Card:
    """A request and where it stands; pending ones carry Approve / Deny."""
    facts = [
        Fact(label="Request", value=view.id),
        Fact(
            label="State",
            value=view.state.value + (" (auto-approved by policy)" if view.auto_approved else ""),
        ),
        Fact(label="Gateway", value=view.gateway),
        Fact(label="Customer", value=view.customer_id or "—"),
        Fact(label="Requested by", value=f"{view.requester_name} ({view.requester_key})"),
        Fact(label="Reason", value=view.reason),
    ]
    if view.policy_note:
        facts.append(Fact(label="Policy", value=view.policy_note))
    if view.state == State.pending:
        got = sum(1 for v in view.votes if v.decision == "approve")
        facts.append(
            Fact(
                label="Needs",
                value=f"{view.approvals_required - got} more {view.approver_role} approval(s)",
            )
        )
        facts.append(Fact(label="Expires", value=f"{view.expires_at:%Y-%m-%d %H:%M} UTC"))
    for v in view.votes:
        label = "Approved by" if v.decision == "approve" else "Denied by"
        facts.append(
            Fact(
                label=label,
                value=f"{v.name} ({v.key}) at {v.at:%H:%M:%S}"
                + (f": {v.reason}" if v.reason else ""),
            )
        )
    if view.result_id:
        facts.append(Fact(label="Result", value=view.result_id))
    if view.error_message:
        facts.append(Fact(label="Gateway said", value=f"{view.error_message} ({view.error_code})"))
    actions = []
    if view.state == State.pending:
        actions = [
            Button(label="Approve", command=f"approve {view.id}", style="primary"),
            Button(label="Deny", command=f"deny {view.id} reason: ", style="danger"),
        ]
    return Card(
        title=f"{describe_action(view, locale)}: {_headline(view)}",
        tone=_STATE_TONE[view.state],
        sections=[Section(facts=facts)] + ([Section(text=note, tone="muted")] if note else []),
        actions=actions,
    )


def _headline(view: ApprovalView) -> str:
    if view.state == State.approved and view.error_code in _NOT_RUN:
        return _NOT_RUN[view.error_code]
    return {
        State.pending: "waiting for approval",
        State.approved: "approved",
        State.executing: "in progress (outcome unknown: will be retried with the same key)",
        State.succeeded: "done",
        State.failed: "failed",
        State.denied: "denied",
        State.expired: "expired",
        State.stale: "stale: the charge changed since the request, ask again",
    }[view.state]


# Why an approved request has not run yet (bot/approvals/executor.py): what will happen to it.
_NOT_RUN = {
    "lock_busy": "approved; another action on it is still running, so it will run as soon as "
    "that finishes (recovery retries it)",
    "redis_unavailable": "approved; not run yet because Redis is unavailable, it will run as "
    "soon as Redis is back (recovery retries it)",
}


def approvals_card(views: Sequence[ApprovalView], *, locale: str, title: str) -> Card:
    rows = [
        [
            v.id,
            describe_action(v, locale),
            v.requester_name,
            v.state.value,
            f"{v.expires_at:%Y-%m-%d %H:%M}",
            v.reason[:40],
        ]
        for v in views
    ]
    return Card(
        title=title,
        sections=[
            Section(
                table=Table(
                    columns=["Request", "Action", "By", "State", "Expires (UTC)", "Reason"],
                    rows=rows,
                )
            )
        ]
        if rows
        else [Section(text="Nothing waiting.", tone="muted")],
        actions=[
            Button(label=f"Approve {v.id}", command=f"approve {v.id}", style="primary")
            for v in views[:3]
            if v.state == State.pending
        ],
    )


def audit_card(entries: Sequence[AuditEntry], *, locale: str, title: str) -> Card:
    rows = [
        [str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", f"{e.actor_name} ({e.actor_platform}:{e.actor_id})", e.action, e.outcome,
         e.object_id or "", Money(minor=e.amount, currency=e.currency).format(locale) if e.amount is not None and e.currency else "",
         e.approval_id or ""]
        for e in entries
    ]  # fmt: skip
    return Card(
        title=title,
        sections=[
            Section(
                table=Table(
                    columns=[
                        "#",
                        "When (UTC)",
                        "Who",
                        "Action",
                        "Outcome",
                        "Object",
                        "Amount",
                        "Request",
                    ],
                    rows=rows,
                )
            )
        ]
        if rows
        else [Section(text="No entries.", tone="muted")],
    )
