"""The built-in ledger gateway: billing data kept in our own SQL tables.

It is ChargeDesk's custom-integration path. The business imports its
customers, charges, subscriptions and invoices (`chargedesk import`); actions
taken in chat are applied here and, when a forward URL is configured, first
sent to the business as a signed webhook whose answer decides the result.

Every action is keyed by an idempotency key: the same key twice returns what
the first call did, so a retried or recovered execution never moves money twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.gateways.base import (
    Capability,
    ErrorCode,
    Gateway,
    GatewayError,
    LookupQuery,
    checked_tax_id,
    tax_id_country,
)
from bot.gateways.checks import check_capture, check_refund, require_status
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Customer,
    Dispute,
    DisputeStatus,
    GatewayProfile,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
    TaxId,
)
from bot.money import Money, exponent
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

NAME = "ledger"
T = TypeVar("T")
SIGNATURE_HEADER = "X-ChargeDesk-Signature"
KEY_MAX = 128  # ledger_operations.idempotency_key


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, as in Stripe's scheme."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Forwarder(BaseModel):
    """Where actions are sent for the business to carry out, and how they are signed."""

    url: str
    secret: str
    timeout: float = 10.0


class ForwardAnswer(BaseModel):
    status: str
    reference: str | None = None
    code: str | None = None
    message: str | None = None


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

    def __init__(
        self, db: Database, *, forwarder: Forwarder | None = None, max_charges: int = 1000
    ):
        self.db = db
        self.forwarder = forwarder
        self.max_charges = max_charges
        self._http = httpx.AsyncClient(timeout=forwarder.timeout) if forwarder else None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    # --- reads ---------------------------------------------------------------------------

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        async with self.db.read() as s:
            ids = await self._customer_ids(s, query)
            return [await self._profile(s, cid) for cid in ids]

    async def get_charge(self, charge_id: str) -> Charge:
        async with self.db.read() as s:
            return _charge(await self._row(s, LedgerCharge, charge_id, "charge"))

    async def get_subscription(self, subscription_id: str) -> Subscription:
        async with self.db.read() as s:
            return _subscription(
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
            customer=_customer(customer),
            charges=tuple(_charge(c) for c in charges),
            refunds=tuple(_refund(r) for r in refunds),
            subscriptions=tuple(_subscription(x) for x in subs),
            invoices=tuple(_invoice(i) for i in invoices),
            disputes=tuple(_dispute(d) for d in disputes),
            tax_ids=_tax_ids(customer),
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
            check_refund(_charge(row), amount)
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
            {"amount": _money_json(amount), "reason": reason},
        )
        async with self.db.read() as s:
            return _refund(await self._row(s, LedgerRefund, result_id, "refund"))

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        async def check(s: AsyncSession) -> LedgerCharge:
            row = await self._locked(s, LedgerCharge, charge_id, "charge")
            check_capture(_charge(row), amount)
            return row

        async def apply(s: AsyncSession, row: LedgerCharge, reference: str | None) -> str:
            row.amount_captured = amount.minor if amount is not None else row.amount
            row.status = ChargeStatus.succeeded
            return row.id

        payload = {"amount": _money_json(amount) if amount else None}
        await self._operate("capture", charge_id, idempotency_key, check, apply, payload)
        return await self.get_charge(charge_id)

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        async def check(s: AsyncSession) -> LedgerCharge:
            row = await self._locked(s, LedgerCharge, charge_id, "charge")
            require_status(_charge(row), ChargeStatus.authorized, "voided")
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
            country = _country(row)
            kind, value = checked_tax_id(tax_id, country=country, gateway=NAME)
            if (row.tax_id_type, row.tax_id_value) == (kind, value):
                return _tax_ids(row)[0]  # the customer has it already: nothing to do

        async def check(s: AsyncSession) -> LedgerCustomer:
            return await self._locked(s, LedgerCustomer, customer_id, "customer")

        async def apply(s: AsyncSession, row: LedgerCustomer, reference: str | None) -> str:
            row.tax_id_type, row.tax_id_value = kind, value
            return row.id  # the tax ID's own ID would not fit result_id for long customer IDs

        payload = {"tax_id": {"type": kind, "value": value, "country": country}}
        await self._operate("tax_id", customer_id, idempotency_key, check, apply, payload)
        async with self.db.read() as s:
            row = await self._row(s, LedgerCustomer, customer_id, "customer")
            return _tax_ids(row)[0]

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
            snapshot = _snapshot(target)
        reference = await self._forward(action, key, target_id, snapshot, payload)
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

    async def _forward(
        self, action: str, key: str, target_id: str, target: dict[str, Any], payload: dict[str, Any]
    ) -> str | None:
        if self.forwarder is None or self._http is None:
            return None
        body = json.dumps(
            {
                "type": action,
                "idempotency_key": key,
                "target_id": target_id,
                "object": target,
                **payload,
            },
            sort_keys=True,
            default=str,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            SIGNATURE_HEADER: sign(self.forwarder.secret, body, int(time.time())),
        }
        try:
            response = await self._http.post(self.forwarder.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise GatewayError(
                ErrorCode.timeout, "the forward endpoint did not answer in time", gateway=NAME
            ) from None
        except httpx.HTTPError as exc:
            raise GatewayError(
                ErrorCode.unavailable,
                f"the forward endpoint could not be reached ({type(exc).__name__})",
                gateway=NAME,
            ) from None
        if response.status_code >= 500:
            raise GatewayError(
                ErrorCode.unavailable,
                f"the forward endpoint failed with HTTP {response.status_code}",
                gateway=NAME,
                raw_code=str(response.status_code),
            )
        try:
            answer = ForwardAnswer.model_validate_json(response.content)
        except ValueError:
            raise GatewayError(
                ErrorCode.unavailable,
                f"the forward endpoint answered HTTP {response.status_code} without a JSON result",
                gateway=NAME,
                raw_code=str(response.status_code),
            ) from None
        if response.status_code >= 300 or answer.status != "succeeded":
            raise GatewayError(
                ErrorCode.rejected,
                f"the business declined the {action}: {answer.message or answer.code or answer.status}",
                gateway=NAME,
                raw_code=answer.code,
                raw_message=answer.message,
            )
        return answer.reference


# --- rows to domain ----------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _stored_key(key: str) -> str:
    """The key as ledger_operations holds it: a longer one (Stripe allows 255) by its SHA-256."""
    if len(key) <= KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _money_json(amount: Money) -> dict[str, Any]:
    # The exponent and the decimal string travel with the integer, so a partner
    # system never has to guess how many digits a currency has.
    return {
        "minor": amount.minor,
        "currency": amount.currency,
        "exponent": exponent(amount.currency),
        "value": f"{amount.decimal}",
    }


def _snapshot(row: Any) -> dict[str, Any]:
    """A row as the forward webhook sends it; integer amounts are in `exponent` digits."""
    snapshot = {c.name: getattr(row, c.key) for c in row.__table__.columns}
    if snapshot.get("currency"):
        snapshot["exponent"] = exponent(snapshot["currency"])
    return snapshot


def _customer(row: LedgerCustomer) -> Customer:
    return Customer(
        gateway=NAME,
        id=row.id,
        email=row.email,
        name=row.name,
        created=row.created,
        address=Address(**row.address) if row.address else None,
        locale=row.locale,
        tax_exempt=row.tax_exempt,
    )


def _country(row: LedgerCustomer) -> str | None:
    country = row.address.get("country") if row.address else None
    return country.upper() if isinstance(country, str) and country else None


def _tax_id_id(customer_id: str) -> str:
    return f"{customer_id}:tax_id"


def _tax_ids(row: LedgerCustomer) -> tuple[TaxId, ...]:
    if not row.tax_id_value:
        return ()
    return (
        TaxId(
            gateway=NAME,
            id=_tax_id_id(row.id),
            type=row.tax_id_type or "unknown",
            value=row.tax_id_value,
            country=tax_id_country(row.tax_id_type, row.tax_id_value) or _country(row),
        ),
    )


def _charge(row: LedgerCharge) -> Charge:
    return Charge(
        gateway=NAME,
        id=row.id,
        customer_id=row.customer_id,
        amount=Money(minor=row.amount, currency=row.currency),
        amount_captured=row.amount_captured,
        amount_refunded=row.amount_refunded,
        status=ChargeStatus(row.status),
        description=row.description,
        invoice_id=row.invoice_id,
        created=row.created,
        failure_message=row.failure_message,
    )


def _refund(row: LedgerRefund) -> Refund:
    return Refund(
        gateway=NAME,
        id=row.id,
        charge_id=row.charge_id,
        amount=Money(minor=row.amount, currency=row.currency),
        reason=row.reason,
        created=row.created,
    )


def _subscription(row: LedgerSubscription) -> Subscription:
    return Subscription(
        gateway=NAME,
        id=row.id,
        customer_id=row.customer_id,
        plan=row.plan,
        status=SubscriptionStatus(row.status),
        amount=Money(minor=row.amount, currency=row.currency),
        interval=row.interval,
        current_period_end=row.current_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
        canceled_at=row.canceled_at,
    )


def _invoice(row: LedgerInvoice) -> Invoice:
    return Invoice(
        gateway=NAME,
        id=row.id,
        customer_id=row.customer_id,
        number=row.number,
        status=InvoiceStatus(row.status),
        amount_due=Money(minor=row.amount_due, currency=row.currency),
        amount_paid=Money(minor=row.amount_paid, currency=row.currency),
        due_date=row.due_date,
        created=row.created,
        charge_id=row.charge_id,
        lines=tuple(
            InvoiceLine(
                description=line["description"],
                quantity=line.get("quantity", 1),
                amount=Money(minor=line["amount"], currency=row.currency),
            )
            for line in row.lines or ()
        ),
    )


def _dispute(row: LedgerDispute) -> Dispute:
    return Dispute(
        gateway=NAME,
        id=row.id,
        charge_id=row.charge_id,
        amount=Money(minor=row.amount, currency=row.currency),
        reason=row.reason,
        status=DisputeStatus(row.status),
        evidence_due_by=row.evidence_due_by,
    )
