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
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.gateways.base import (
    Capability,
    ErrorCode,
    Gateway,
    GatewayError,
    LookupQuery,
)
from bot.gateways.checks import check_capture, check_refund, require_status
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
    tax_ids_of,
)
from bot.models import (
    Charge,
    ChargeStatus,
    GatewayProfile,
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
    LedgerRefund,
    LedgerSubscription,
)
from bot.tax_ids import checked_tax_id

T = TypeVar("T")
KEY_MAX = 128  # ledger_operations.idempotency_key


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
            Capability.tax_id,
        }
    )
    limits: ClassVar[Mapping[Capability, str]] = {
        Capability.tax_id: "one per customer: a new one replaces it",
    }

    def __init__(
        self, db: Database, *, forwarder: Forwarder | None = None, max_charges: int = 1000
    ):
        self.db = db
        self.forwarder = forwarder
        self.max_charges = max_charges
        self._forwarding = Forwarding(forwarder) if forwarder else None

    async def close(self) -> None:
        if self._forwarding is not None:
            await self._forwarding.close()

    # --- reads ---------------------------------------------------------------------------

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        async with self.db.read() as s:
            ids = await self._customer_ids(s, query)
            return [await self._profile(s, cid) for cid in ids]

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
        return [dispute] if dispute else []

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

    async def _operate(
        self,
        action: str,
        target_id: str,
        key: str,
        check: Callable[[AsyncSession], Awaitable[Any]],
        apply: Callable[[AsyncSession, Any, str | None], Awaitable[str]],
        payload: dict[str, Any],
    ) -> str:
        """Check, forward to the business if configured, then apply; once per key."""
        async with self.db.read() as s:
            done = await self._done(s, key, action, target_id)
            if done:
                return done
            target = await check(s)
            target_row = snapshot(target)
        reference = (
            await self._forwarding.send(action, key, target_id, target_row, payload)
            if self._forwarding is not None
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


def _stored_key(key: str) -> str:
    """The key as ledger_operations holds it: a longer one (Stripe allows 255) by its SHA-256."""
    if len(key) <= KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
