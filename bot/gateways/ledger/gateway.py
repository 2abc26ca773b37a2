"""The built-in ledger gateway: billing data kept in our own SQL tables.

It is ChargeDesk's custom-integration path. The business imports its
customers, charges, subscriptions and invoices (`chargedesk import`, see
`importer`); actions taken in chat are applied here and, when a forward URL is
configured, first sent to the business as a signed webhook (`forward`) whose
answer decides the result.

Every action is keyed by an idempotency key: the same key twice returns what
the first call did, so a retried or recovered execution never moves money twice.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.disputes.evidence import Evidence
from bot.gateways.base import (
    Capability,
    ErrorCode,
    Gateway,
    GatewayError,
    LookupQuery,
    SyncPage,
)
from bot.gateways.checks import (
    check_capture,
    check_refund,
    require_status,
    require_unanswered,
)
from bot.gateways.ledger import coupons, search, sync
from bot.gateways.ledger.forward import Forwarder, Forwarding, money_json, snapshot
from bot.gateways.ledger.mapping import (
    NAME,
    charge_of,
    country_of,
    customer_of,
    dispute_of,
    invoice_of,
    refund_of,
    subscription_of,
    tax_id_id,
    tax_ids_of,
)
from bot.gateways.proration import period_after, period_before, prorated
from bot.gateways.termination import PAID_STATUSES, PaidPeriod, nothing_paid
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Coupon,
    Customer,
    Dispute,
    DisputeStatus,
    GatewayProfile,
    PayLink,
    PayLinkStatus,
    PlanChange,
    PlanPrice,
    Refund,
    Subscription,
    SubscriptionStatus,
    TaxId,
)
from bot.money import Money
from bot.store.db import Database
from bot.store.tables import (
    LedgerCharge,
    LedgerCustomer,
    LedgerDispute,
    LedgerInvoice,
    LedgerOperation,
    LedgerPayLink,
    LedgerPrice,
    LedgerRefund,
    LedgerSubscription,
)
from bot.tax_ids import checked_tax_id, normalize_tax_id

T = TypeVar("T")
# (link ID, expiry) -> the billing page's signed URL for that link.
PayPages = Callable[[str, datetime], str]
KEY_MAX = 128  # ledger_operations.idempotency_key
LINK_OPEN, LINK_PAID, LINK_CANCELLED = "open", "paid", "cancelled"  # ledger_pay_links.status


def new_id(prefix: str) -> str:
    """A new ledger object ID with Stripe-like prefix (`re_…`)."""
    return f"{prefix}_{secrets.token_hex(8)}"


class LedgerGateway(Gateway):
    name = NAME
    capabilities = frozenset(
        {
            Capability.lookup,
            Capability.refund,
            Capability.partial_refund,
            Capability.capture,
            Capability.void,
            Capability.cancel_subscription,
            Capability.invoices,
            Capability.disputes,
            Capability.accept_dispute,
            Capability.dispute_evidence,
            Capability.tax_id,
            Capability.customer_details,
            Capability.create_subscription,
            Capability.change_plan,
            Capability.pause_subscription,
            Capability.coupon,
            Capability.charge_saved_card,
            Capability.sync,
            Capability.payment_link,
            Capability.cancel_with_refund,
        }
    )
    limits: ClassVar[Mapping[Capability, str]] = {
        Capability.tax_id: "one per customer: a new one replaces it",
        Capability.change_plan: "from now only; a prorated charge is an open invoice",
        Capability.charge_saved_card: "a charge record, sent to your system to collect",
        Capability.payment_link: "our billing page; Pay records a charge for your system "
        "to collect",
        Capability.cancel_with_refund: "charges imported with their subscription",
    }
    # The ledger moves no money itself: its refund is already a record (and is sent to the
    # business's forward URL, whose answer decides), so a second, unforwarded kind would not fit.
    missing: ClassVar[Mapping[Capability, str]] = {
        Capability.manual_refund: "a ledger refund is a record already, sent to your system "
        "when a forward URL is set: use refund without manual",
    }

    def __init__(
        self,
        db: Database,
        *,
        forwarder: Forwarder | None = None,
        max_charges: int = 1000,
        pay_pages: PayPages | None = None,
        pay_link_days: int = 14,
    ):
        self.db = db
        self.forwarder = forwarder
        self.max_charges = max_charges
        # The ledger has no payment page of its own: a pay link opens our billing page, whose
        # signed URL the wiring knows how to make (bot/payment_requests/hosted.py).
        self.pay_pages = pay_pages
        self.pay_link_days = pay_link_days
        self._forwarding = Forwarding(forwarder) if forwarder else None

    async def close(self) -> None:
        if self._forwarding is not None:
            await self._forwarding.close()

    # --- reads ---------------------------------------------------------------------------

    lookup_kinds = frozenset({"email", "id", "invoice_number", "name", "partial_email"})

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        async with self.db.read() as s:
            if query.kind in ("name", "partial_email"):  # the pick list needs the customer only
                find = search.named if query.kind == "name" else search.by_email_part
                rows = [await s.get(LedgerCustomer, cid) for cid in await find(s, query.value)]
                return [GatewayProfile(gateway=NAME, customer=customer_of(r)) for r in rows if r]
            ids = await self._customer_ids(s, query)
            return [await self._profile(s, cid) for cid in ids]

    async def sync_page(
        self, kind: str, cursor: str | None, *, since: datetime | None, limit: int
    ) -> SyncPage:
        return await sync.page(self.db, kind, cursor, since=since, limit=limit)

    async def get_charge(self, charge_id: str) -> Charge:
        async with self.db.read() as s:
            return charge_of(await self._row(s, LedgerCharge, charge_id, "charge"))

    async def get_subscription(self, subscription_id: str) -> Subscription:
        async with self.db.read() as s:
            return subscription_of(
                await self._row(s, LedgerSubscription, subscription_id, "subscription")
            )

    async def _customer_ids(self, s: AsyncSession, query: LookupQuery) -> list[str]:
        if query.kind == "email":
            # Emails are stored lower-cased (the import does it), so the index serves this.
            rows = await s.scalars(
                select(LedgerCustomer.id).where(LedgerCustomer.email == query.value)
            )
            return list(rows)
        if query.kind == "invoice_number":
            return await search.by_invoice_number(s, query.value)
        for table, column in (
            (LedgerCustomer, LedgerCustomer.id),
            (LedgerCharge, LedgerCharge.customer_id),
            (LedgerInvoice, LedgerInvoice.customer_id),
            (LedgerSubscription, LedgerSubscription.customer_id),
        ):
            found = await s.scalar(select(column).where(table.id == query.value))
            if found:
                return [found]
        dispute = await s.scalar(
            select(LedgerCharge.customer_id)
            .join(LedgerDispute, LedgerDispute.charge_id == LedgerCharge.id)
            .where(LedgerDispute.id == query.value)
        )
        if dispute:
            return [dispute]
        refunded = await search.by_refund(s, query.value)
        return [refunded] if refunded else []

    async def _profile(self, s: AsyncSession, customer_id: str) -> GatewayProfile:
        customer = await s.get(LedgerCustomer, customer_id)
        assert customer is not None
        newest = (
            select(LedgerCharge.id)
            .where(LedgerCharge.customer_id == customer_id)
            .order_by(LedgerCharge.created.desc())
            .limit(self.max_charges)
        )
        charges = await s.scalars(
            select(LedgerCharge)
            .where(LedgerCharge.id.in_(newest))
            .order_by(LedgerCharge.created.desc())
        )
        # A subquery, not a list of IDs: PostgreSQL caps bound parameters at 32,767.
        refunds = await s.scalars(select(LedgerRefund).where(LedgerRefund.charge_id.in_(newest)))
        disputes = await s.scalars(select(LedgerDispute).where(LedgerDispute.charge_id.in_(newest)))
        subs = await s.scalars(
            select(LedgerSubscription).where(LedgerSubscription.customer_id == customer_id)
        )
        invoices = await s.scalars(
            select(LedgerInvoice)
            .where(LedgerInvoice.customer_id == customer_id)
            .order_by(LedgerInvoice.created.desc())
        )
        return GatewayProfile(
            gateway=NAME,
            customer=customer_of(customer),
            charges=tuple(charge_of(c) for c in charges),
            refunds=tuple(refund_of(r) for r in refunds),
            subscriptions=tuple(subscription_of(x) for x in subs),
            invoices=tuple(invoice_of(i) for i in invoices),
            disputes=tuple(dispute_of(d) for d in disputes),
            tax_ids=tax_ids_of(customer),
            discounts=await coupons.discounts_of(s, customer_id),
        )

    async def _row(self, s: AsyncSession, table: type[T], object_id: str, what: str) -> T:
        row = await s.get(table, object_id)
        if row is None:
            raise GatewayError(
                ErrorCode.not_found, f"no {what} {object_id} in the ledger", gateway=NAME
            )
        return row

    # --- actions -------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        async def check(s: AsyncSession) -> LedgerCharge:
            row = await self._locked(s, LedgerCharge, charge_id, "charge")
            check_refund(charge_of(row), amount)
            return row

        async def apply(s: AsyncSession, row: LedgerCharge, reference: str | None) -> str:
            refund = LedgerRefund(
                id=new_id("re"),
                charge_id=row.id,
                amount=amount.minor,
                currency=amount.currency,
                reason=reason,
                created=_now(),
            )
            s.add(refund)
            row.amount_refunded += amount.minor
            fully = row.amount_refunded >= row.amount_captured
            row.status = ChargeStatus.refunded if fully else ChargeStatus.partially_refunded
            return refund.id

        result_id = await self._operate(
            "refund",
            charge_id,
            idempotency_key,
            check,
            apply,
            {"amount": money_json(amount), "reason": reason},
        )
        async with self.db.read() as s:
            return refund_of(await self._row(s, LedgerRefund, result_id, "refund"))

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        async def check(s: AsyncSession) -> LedgerCharge:
            row = await self._locked(s, LedgerCharge, charge_id, "charge")
            check_capture(charge_of(row), amount)
            return row

        async def apply(s: AsyncSession, row: LedgerCharge, reference: str | None) -> str:
            row.amount_captured = amount.minor if amount is not None else row.amount
            row.status = ChargeStatus.succeeded
            return row.id

        payload = {"amount": money_json(amount) if amount else None}
        await self._operate("capture", charge_id, idempotency_key, check, apply, payload)
        return await self.get_charge(charge_id)

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        async def check(s: AsyncSession) -> LedgerCharge:
            row = await self._locked(s, LedgerCharge, charge_id, "charge")
            require_status(charge_of(row), ChargeStatus.authorized, "voided")
            return row

        async def apply(s: AsyncSession, row: LedgerCharge, reference: str | None) -> str:
            row.status = ChargeStatus.voided
            return row.id

        await self._operate("void", charge_id, idempotency_key, check, apply, {})
        return await self.get_charge(charge_id)

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        async def check(s: AsyncSession) -> LedgerSubscription:
            row = await self._locked(s, LedgerSubscription, subscription_id, "subscription")
            if row.status == SubscriptionStatus.canceled:
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"subscription {row.id} is already canceled",
                    gateway=NAME,
                )
            if at_period_end and row.cancel_at_period_end:
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"subscription {row.id} is already set to cancel at period end",
                    gateway=NAME,
                )
            return row

        async def apply(s: AsyncSession, row: LedgerSubscription, reference: str | None) -> str:
            if at_period_end:
                row.cancel_at_period_end = True
            else:
                row.status = SubscriptionStatus.canceled
                row.canceled_at = _now()
            return row.id

        payload = {"at_period_end": at_period_end, "reason": reason}
        await self._operate("cancel", subscription_id, idempotency_key, check, apply, payload)
        return await self.get_subscription(subscription_id)

    # --- subscriptions: subscribe, plan, pause (bot/gateways/proration.py prices changes) ---

    async def get_price(self, price: str) -> PlanPrice:
        async with self.db.read() as s:
            row = await self._row(s, LedgerPrice, price, "plan")
        if not row.active:
            raise GatewayError(ErrorCode.invalid_state, f"plan {price} is retired", gateway=NAME)
        return PlanPrice(
            gateway=NAME, id=row.id, name=row.name, interval=row.interval,
            amount=Money(minor=row.amount, currency=row.currency),
        )  # fmt: skip

    async def create_subscription(
        self,
        customer_id: str,
        price: str,
        *,
        idempotency_key: str,
        quantity: int = 1,
        trial_days: int | None = None,
        coupon: str | None = None,
    ) -> Subscription:
        plan = await self.get_price(price)

        async def check(s: AsyncSession) -> LedgerCustomer:
            return await self._locked(s, LedgerCustomer, customer_id, "customer")

        async def apply(s: AsyncSession, row: LedgerCustomer, reference: str | None) -> str:
            start = _now()
            trial_end = start + timedelta(days=trial_days) if trial_days else None
            sub = LedgerSubscription(
                id=new_id("sub"), customer_id=row.id, plan=plan.name, price_id=plan.id,
                status=SubscriptionStatus.trialing if trial_end else SubscriptionStatus.active,
                amount=plan.amount.minor, currency=plan.amount.currency, interval=plan.interval,
                quantity=quantity, trial_end=trial_end, current_period_start=start,
                current_period_end=trial_end or period_after(start, plan.interval),
                cancel_at_period_end=False, paused=False,
            )  # fmt: skip
            s.add(sub)
            return sub.id

        payload = {"price": price, "quantity": quantity, "trial_days": trial_days}
        sub_id = await self._operate(
            "subscribe", customer_id, idempotency_key, check, apply, payload
        )
        if coupon is not None:  # a gateway without coupons raises Unsupported before approval
            await self.apply_coupon(sub_id, coupon, idempotency_key=f"{idempotency_key}:coupon")
        return await self.get_subscription(sub_id)

    def _preview(
        self, row: LedgerSubscription, plan: PlanPrice, *, now: bool, prorate: bool, at: int
    ) -> PlanChange:
        if not now:
            raise GatewayError(
                ErrorCode.rejected,
                "the ledger changes plans from now only: it bills no renewals itself",
                gateway=NAME,
            )
        if plan.amount.currency != row.currency or plan.interval != row.interval:
            raise GatewayError(
                ErrorCode.currency_mismatch,
                f"plan {plan.id} bills {plan.amount.currency} per {plan.interval}: "
                f"{row.id} bills {row.currency} per {row.interval}",
                gateway=NAME,
            )
        quantity = row.quantity or 1
        due = 0
        if prorate and row.current_period_end is not None and row.status != "trialing":
            end = row.current_period_end
            due = prorated(
                row.amount * quantity, plan.amount.minor * quantity,
                start=row.current_period_start or period_before(end, row.interval), end=end,
                at=datetime.fromtimestamp(at, UTC),
            )  # fmt: skip
        return PlanChange(
            gateway=NAME, subscription_id=row.id, price=plan.id, plan=plan.name, now=now,
            prorate=prorate, at=at, due_now=Money(minor=due, currency=row.currency),
            recurring=Money(minor=plan.amount.minor * quantity, currency=row.currency),
            interval=plan.interval, quantity=quantity,
        )  # fmt: skip

    async def preview_plan_change(
        self, subscription_id: str, price: str, *, now: bool, prorate: bool, at: int | None = None
    ) -> PlanChange:
        plan = await self.get_price(price)
        async with self.db.read() as s:
            row = await self._row(s, LedgerSubscription, subscription_id, "subscription")
            return self._preview(
                row, plan, now=now, prorate=prorate, at=at or int(_now().timestamp())
            )

    async def change_plan(self, change: PlanChange, *, idempotency_key: str) -> Subscription:
        plan = await self.get_price(change.price)

        async def check(s: AsyncSession) -> LedgerSubscription:
            row = await self._locked(s, LedgerSubscription, change.subscription_id, "subscription")
            if row.status == SubscriptionStatus.canceled:
                raise GatewayError(
                    ErrorCode.invalid_state, f"subscription {row.id} is canceled", gateway=NAME
                )
            fresh = self._preview(row, plan, now=change.now, prorate=change.prorate, at=change.at)
            if (fresh.due_now, fresh.recurring) != (change.due_now, change.recurring):
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"subscription {row.id} changed since the preview: preview it again",
                    gateway=NAME,
                )
            return row

        async def apply(s: AsyncSession, row: LedgerSubscription, reference: str | None) -> str:
            row.plan, row.price_id, row.amount = plan.name, plan.id, plan.amount.minor
            if change.due_now.minor > 0:  # the business collects it: an open invoice today
                s.add(LedgerInvoice(
                    id=new_id("in"), customer_id=row.customer_id, status="open",
                    amount_due=change.due_now.minor, amount_paid=0, currency=row.currency,
                    created=_now(), due_date=None, lines=[{
                        "description": f"{plan.name} (prorated)", "quantity": 1,
                        "amount": change.due_now.minor,
                    }],
                ))  # fmt: skip
            return row.id

        payload = {"preview": change.model_dump(mode="json")}
        await self._operate("plan", change.subscription_id, idempotency_key, check, apply, payload)
        return await self.get_subscription(change.subscription_id)

    async def set_paused(
        self, subscription_id: str, paused: bool, *, idempotency_key: str
    ) -> Subscription:
        async def check(s: AsyncSession) -> LedgerSubscription:
            row = await self._locked(s, LedgerSubscription, subscription_id, "subscription")
            if row.status == SubscriptionStatus.canceled:
                raise GatewayError(
                    ErrorCode.invalid_state, f"subscription {row.id} is canceled", gateway=NAME
                )
            return row

        async def apply(s: AsyncSession, row: LedgerSubscription, reference: str | None) -> str:
            row.paused = paused  # already so: the same result, nothing else changes
            return row.id

        action = "pause" if paused else "resume"
        await self._operate(action, subscription_id, idempotency_key, check, apply, {})
        return await self.get_subscription(subscription_id)

    async def charge_saved_card(
        self, customer_id: str, amount: Money, *, description: str, idempotency_key: str
    ) -> Charge:
        """A succeeded charge row: the ledger takes no money itself; with a forward URL the
        business's system collects it first and its answer decides."""

        async def check(s: AsyncSession) -> LedgerCustomer:
            return await self._locked(s, LedgerCustomer, customer_id, "customer")

        async def apply(s: AsyncSession, row: LedgerCustomer, reference: str | None) -> str:
            charge = LedgerCharge(
                id=new_id("ch"), customer_id=row.id, amount=amount.minor, currency=amount.currency,
                amount_captured=amount.minor, amount_refunded=0, status=ChargeStatus.succeeded,
                description=description[:500], created=_now(),
            )  # fmt: skip
            s.add(charge)
            return charge.id

        payload = {"amount": money_json(amount), "description": description}
        charge_id = await self._operate(
            "charge", customer_id, idempotency_key, check, apply, payload
        )
        return await self.get_charge(charge_id)

    async def add_tax_id(
        self, customer_id: str, tax_id: str, *, idempotency_key: str, replace: bool = False
    ) -> TaxId:
        """Set the customer's tax ID: a ledger customer has one, so `replace` is always implied."""
        async with self.db.read() as s:
            row = await self._row(s, LedgerCustomer, customer_id, "customer")
            country = country_of(row)
            kind, value = checked_tax_id(tax_id, country=country, gateway=NAME)
            if (row.tax_id_type, row.tax_id_value) == (kind, value):
                return tax_ids_of(row)[0]  # the customer has it already: nothing to do

        async def check(s: AsyncSession) -> LedgerCustomer:
            return await self._locked(s, LedgerCustomer, customer_id, "customer")

        async def apply(s: AsyncSession, row: LedgerCustomer, reference: str | None) -> str:
            row.tax_id_type, row.tax_id_value = kind, value
            return row.id  # the tax ID's own ID would not fit result_id for long customer IDs

        payload = {"tax_id": {"type": kind, "value": value, "country": country}}
        await self._operate("tax_id", customer_id, idempotency_key, check, apply, payload)
        async with self.db.read() as s:
            row = await self._row(s, LedgerCustomer, customer_id, "customer")
            return tax_ids_of(row)[0]

    # --- cancel and refund, pay links ----------------------------------------------------

    async def subscription_payment(self, subscription_id: str) -> PaidPeriod:
        """The newest charge that took money for the subscription (imported with its
        `subscription`), and the period it paid for: the current one if the charge falls in
        it, else one billing interval from the charge."""
        async with self.db.read() as s:
            sub = await self._row(s, LedgerSubscription, subscription_id, "subscription")
            row = await s.scalar(
                select(LedgerCharge)
                .where(
                    LedgerCharge.subscription_id == subscription_id,
                    LedgerCharge.amount_captured > 0,
                    LedgerCharge.status.in_(PAID_STATUSES),
                )
                .order_by(LedgerCharge.created.desc(), LedgerCharge.id.desc())
                .limit(1)
            )
        if row is None:
            raise nothing_paid(NAME, subscription_id, "no paid charge in the ledger")
        start, end = sub.current_period_start, sub.current_period_end
        if start is None and end is not None:
            start = period_before(end, sub.interval)
        if start is None or end is None or not start <= row.created < end:
            start, end = row.created, period_after(row.created, sub.interval)
        return PaidPeriod(charge=charge_of(row), start=start, end=end)

    async def create_pay_link(
        self, customer_id: str, amount: Money, *, description: str, reference: str,
        idempotency_key: str,
    ) -> PayLink:  # fmt: skip
        """A link to our billing page for `amount`, open `pay_link_days` days: a record only
        (nothing is sent to the business until the customer pays)."""
        if self.pay_pages is None:
            raise GatewayError(
                ErrorCode.not_configured, "the billing pages are not set up", gateway=NAME
            )

        async def check(s: AsyncSession) -> LedgerCustomer:
            return await self._locked(s, LedgerCustomer, customer_id, "customer")

        async def apply(s: AsyncSession, row: LedgerCustomer, _: str | None) -> str:
            now = _now()
            link = LedgerPayLink(
                id=new_id("plink"), customer_id=row.id, amount=amount.minor,
                currency=amount.currency, description=description[:500], reference=reference,
                status=LINK_OPEN, created=now, expires_at=now + timedelta(days=self.pay_link_days),
            )  # fmt: skip
            s.add(link)
            return link.id

        payload = {"amount": money_json(amount), "reference": reference}
        link_id = await self._operate(
            "pay_link", customer_id, idempotency_key, check, apply, payload, forward=False
        )
        return await self.get_pay_link(link_id)

    async def get_pay_link(self, link_id: str) -> PayLink:
        async with self.db.read() as s:
            row = await self._row(s, LedgerPayLink, link_id, "pay link")
        status = pay_link_status(row, _now())
        url = None
        if status == PayLinkStatus.open and self.pay_pages is not None:
            url = self.pay_pages(row.id, row.expires_at)
        return PayLink(
            gateway=NAME, id=row.id, status=status, url=url, expires_at=row.expires_at,
            charge_id=row.charge_id,
        )  # fmt: skip

    async def cancel_pay_link(self, link_id: str) -> PayLink:
        async with self.db.write() as s:
            row = await self._locked(s, LedgerPayLink, link_id, "pay link")
            if row.status == LINK_OPEN:
                row.status = LINK_CANCELLED
        return await self.get_pay_link(link_id)

    async def pay_own_page_link(self, link_id: str) -> PayLink:
        """A charge of the link's amount, recorded once per payment request (its key is the
        request's): what any ledger charge is, sent first to the business's system to collect
        when a forward URL is set. Refused once the link is cancelled or past its expiry."""
        async with self.db.read() as s:
            found = await self._row(s, LedgerPayLink, link_id, "pay link")
        amount = Money(minor=found.amount, currency=found.currency)

        async def check(s: AsyncSession) -> LedgerPayLink:
            row = await self._locked(s, LedgerPayLink, link_id, "pay link")
            status = pay_link_status(row, _now())
            if status != PayLinkStatus.open:
                why = "cancelled" if row.status == LINK_CANCELLED else status.value
                raise GatewayError(
                    ErrorCode.invalid_state, f"pay link {link_id} is {why}", gateway=NAME
                )
            return row

        async def apply(s: AsyncSession, row: LedgerPayLink, _: str | None) -> str:
            charge = LedgerCharge(
                id=new_id("ch"), customer_id=row.customer_id, amount=row.amount,
                currency=row.currency, amount_captured=row.amount, amount_refunded=0,
                status=ChargeStatus.succeeded, description=row.description, created=_now(),
            )  # fmt: skip
            s.add(charge)
            row.status, row.charge_id = LINK_PAID, charge.id
            return charge.id

        payload = {
            "amount": money_json(amount), "description": found.description,
            "customer": found.customer_id, "payment_request": found.reference,
        }  # fmt: skip
        # Keyed by the request, not the link: one request is paid once, whatever page it was on.
        await self._operate(
            "charge", found.customer_id, f"{found.reference}:pay", check, apply, payload
        )
        return await self.get_pay_link(link_id)

    # --- disputes ------------------------------------------------------------------------

    async def get_dispute(self, dispute_id: str) -> Dispute:
        async with self.db.read() as s:
            return dispute_of(await self._row(s, LedgerDispute, dispute_id, "dispute"))

    async def open_disputes(self) -> list[Dispute]:
        async with self.db.read() as s:
            rows = await s.scalars(
                select(LedgerDispute).where(LedgerDispute.status == DisputeStatus.needs_response)
            )
            return [dispute_of(row) for row in rows]

    async def accept_dispute(self, dispute_id: str, *, idempotency_key: str) -> Dispute:
        async def apply(s: AsyncSession, row: LedgerDispute, reference: str | None) -> str:
            row.status = DisputeStatus.lost
            return row.id

        await self._operate(
            "accept_dispute", dispute_id, idempotency_key, self._unanswered(dispute_id), apply, {}
        )
        return await self.get_dispute(dispute_id)

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: Evidence, *, idempotency_key: str
    ) -> Dispute:
        async def apply(s: AsyncSession, row: LedgerDispute, reference: str | None) -> str:
            row.status = DisputeStatus.under_review
            row.evidence = evidence.stored()
            row.evidence_submitted_at = _now()
            return row.id

        await self._operate(
            "dispute_evidence", dispute_id, idempotency_key, self._unanswered(dispute_id), apply,
            {"evidence": evidence.stored()},
        )  # fmt: skip
        return await self.get_dispute(dispute_id)

    def _unanswered(self, dispute_id: str) -> Callable[[AsyncSession], Awaitable[LedgerDispute]]:
        async def check(s: AsyncSession) -> LedgerDispute:
            row = await self._locked(s, LedgerDispute, dispute_id, "dispute")
            require_unanswered(dispute_of(row))
            return row

        return check

    async def remove_tax_id(self, customer_id: str, tax_id: str, *, idempotency_key: str) -> str:
        """Clear the customer's one tax ID if it is `tax_id` (number or ID)."""
        wanted = {normalize_tax_id(tax_id), tax_id_id(customer_id)}

        async def check(s: AsyncSession) -> LedgerCustomer:
            return await self._locked(s, LedgerCustomer, customer_id, "customer")

        async def apply(s: AsyncSession, row: LedgerCustomer, reference: str | None) -> str:
            if row.tax_id_value and normalize_tax_id(row.tax_id_value) in wanted:
                row.tax_id_type, row.tax_id_value = None, None
            return row.id

        payload = {"tax_id": {"remove": normalize_tax_id(tax_id)}}
        await self._operate("tax_id_remove", customer_id, idempotency_key, check, apply, payload)
        return normalize_tax_id(tax_id)

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        address: Address | None = None,
        idempotency_key: str,
    ) -> Customer:
        async def check(s: AsyncSession) -> LedgerCustomer:
            return await self._locked(s, LedgerCustomer, customer_id, "customer")

        async def apply(s: AsyncSession, row: LedgerCustomer, reference: str | None) -> str:
            if name is not None:
                row.name = name
            if address is not None:
                row.address = address.model_dump(exclude_none=True)
            return row.id

        payload = {
            "name": name, "address": address.model_dump(exclude_none=True) if address else None
        }  # fmt: skip
        await self._operate("customer", customer_id, idempotency_key, check, apply, payload)
        async with self.db.read() as s:
            return customer_of(await self._row(s, LedgerCustomer, customer_id, "customer"))

    async def coupon(self, code: str, *, currency: str | None = None) -> Coupon:
        async with self.db.read() as s:
            return await coupons.read_coupon(s, code)

    async def apply_coupon(self, target_id: str, code: str, *, idempotency_key: str) -> str:
        return await coupons.apply(self, target_id, code, idempotency_key)

    async def remove_discount(self, target_id: str, *, idempotency_key: str) -> str:
        return await coupons.remove(self, target_id, idempotency_key)

    async def _operate(
        self,
        action: str,
        target_id: str,
        key: str,
        check: Callable[[AsyncSession], Awaitable[Any]],
        apply: Callable[[AsyncSession, Any, str | None], Awaitable[str]],
        payload: dict[str, Any],
        *,
        forward: bool = True,
    ) -> str:
        """Check, forward to the business if configured (and `forward`: a record that moves
        no money, such as a pay link, is not sent), then apply; once per key."""
        async with self.db.read() as s:
            done = await self._done(s, key, action, target_id)
            if done:
                return done
            target = await check(s)
            target_row = snapshot(target)
        reference = (
            await self._forwarding.send(action, key, target_id, target_row, payload)
            if self._forwarding is not None and forward
            else None
        )
        async with self.db.write() as s:
            done = await self._done(s, key, action, target_id)
            if done:
                return done
            target = await check(s)  # again, under the write lock: money may have moved
            result_id = await apply(s, target, reference)
            s.add(
                LedgerOperation(
                    idempotency_key=_stored_key(key),
                    action=action,
                    target_id=target_id,
                    result_id=result_id,
                    external_ref=reference,
                    created=_now(),
                )
            )
            return result_id

    async def _done(self, s: AsyncSession, key: str, action: str, target_id: str) -> str | None:
        op = await s.get(LedgerOperation, _stored_key(key))
        if op is None:
            return None
        if (op.action, op.target_id) != (action, target_id):
            raise GatewayError(
                ErrorCode.rejected,
                f"idempotency key {key} was already used for {op.action} {op.target_id}",
                gateway=NAME,
            )
        return op.result_id

    async def _locked(self, s: AsyncSession, table: type[T], object_id: str, what: str) -> T:
        # FOR UPDATE matters on PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes.
        row = await s.scalar(select(table).where(table.id == object_id).with_for_update())  # type: ignore[attr-defined]
        if row is None:
            raise GatewayError(
                ErrorCode.not_found, f"no {what} {object_id} in the ledger", gateway=NAME
            )
        return row


def _now() -> datetime:
    return datetime.now(UTC)


def pay_link_status(row: LedgerPayLink, now: datetime) -> PayLinkStatus:
    """Paid, open, or expired (cancelled, or past its expiry unpaid)."""
    if row.status == LINK_PAID:
        return PayLinkStatus.paid
    if row.status == LINK_CANCELLED or row.expires_at <= now:
        return PayLinkStatus.expired
    return PayLinkStatus.open


def _stored_key(key: str) -> str:
    """The key as ledger_operations holds it: a longer one (Stripe allows 255) by its SHA-256."""
    if len(key) <= KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
