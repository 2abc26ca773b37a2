"""The Stripe gateway: reads and actions through `StripeAPI`, objects through `mapping`.

A lookup fans out: customers by search and by list at once, then each
customer's charges, subscriptions, invoices and tax IDs at once, paging up to a
cap. Every write carries the approval's idempotency key, which Stripe honours
for 24 hours; the key is also written into the object's metadata, so a recovery
after that window finds the first result instead of moving money twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from bot.disputes.evidence import Evidence
from bot.gateways.base import (
    Capability,
    ErrorCode,
    Gateway,
    GatewayError,
    LookupQuery,
    SyncPage,
)
from bot.gateways.checks import check_capture, check_refund, require_status
from bot.gateways.events import GatewayEvent
from bot.gateways.stripe import disputes, payments, plans, search, sync
from bot.gateways.stripe.client import StripeAPI, portal_unconfigured
from bot.gateways.stripe.mapping import (
    ADDRESS_FIELDS,
    KEY_META,
    NAME,
    REASON_META,
    clip_metadata,
    coupon_of,
    describe_discount,
    discount_applies,
    expandable_id,
    invoice_payment_id,
    metadata_of,
    parse_charge,
    parse_customer,
    parse_dispute,
    parse_invoice,
    parse_refund,
    parse_subscription,
    parse_tax_id,
    stripe_refund_reason,
    subscription_period,
    to_stripe_amount,
)
from bot.gateways.stripe.webhooks import verify_and_parse
from bot.gateways.termination import PaidPeriod, nothing_paid
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Coupon,
    Customer,
    Dispute,
    GatewayProfile,
    Invoice,
    PayLink,
    PlanChange,
    PlanPrice,
    Refund,
    Subscription,
    TaxId,
)
from bot.money import Money
from bot.settings import StripeSettings
from bot.tax_ids import InvalidTaxId, checked_tax_id, normalize_tax_id

_DASHBOARD_SECTIONS = {
    "cus": "customers",
    "ch": "payments",
    "py": "payments",
    "pi": "payments",
    "re": "refunds",
    "sub": "subscriptions",
    "in": "invoices",
    "dp": "disputes",
    "du": "disputes",
    "evt": "events",
}


class StripeGateway(Gateway):
    name = NAME
    # Every refund goes back through Stripe: there is no record of money paid back by hand.
    capabilities = frozenset(Capability) - {Capability.manual_refund}
    limits: ClassVar[Mapping[Capability, str]] = {
        # Since API 2025-03-31 a coupon lives on subscriptions, not on the customer.
        Capability.coupon: "on subscriptions: a customer's coupon goes on each live one",
        Capability.change_plan: "now (priced by Stripe's preview) or at renewal (a subscription "
        "schedule); subscriptions of one item",
    }

    max_listed = 100  # subscriptions, invoices and tax IDs shown per customer

    def __init__(self, settings: StripeSettings, *, max_charges: int = 1000) -> None:
        self._api = StripeAPI(settings)
        self.settings = settings
        self.max_charges = max_charges

    async def close(self) -> None:
        await self._api.close()

    def dashboard_url(self, object_id: str) -> str | None:
        """Where a person sees the object in Stripe's dashboard (test mode included)."""
        section = _DASHBOARD_SECTIONS.get(object_id.split("_", 1)[0])
        if section is None:
            return None
        test = "/test" if self._api.test_mode else ""
        return f"{self.settings.dashboard_url.rstrip('/')}{test}/{section}/{object_id}"

    # --- reads -----------------------------------------------------------------------------
    lookup_kinds = frozenset({"email", "id", "invoice_number", "name", "partial_email"})

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        if query.kind in ("name", "partial_email"):
            return await search.customers(self._api, query)
        if query.kind == "email":
            customers = await self._customers_by_email(query.value)
        else:
            owners = (
                await search.invoice_customers(self._api, query.value)
                if query.kind == "invoice_number"
                else [await self._customer_of(query.value)]
            )
            found = [
                await self._api.find(
                    lambda customer_id=customer_id: self._api.v1.customers.retrieve_async(
                        customer_id
                    ),
                    f"customer {customer_id}",
                )
                for customer_id in owners
                if customer_id
            ]
            customers = [c for c in found if c and not c.get("deleted")]
        return list(await asyncio.gather(*(self._profile(c) for c in customers)))

    async def sync_page(
        self, kind: str, cursor: str | None, *, since: datetime | None, limit: int
    ) -> SyncPage:
        return await sync.page(self._api, kind, cursor, since=since, limit=limit)

    async def get_charge(self, charge_id: str) -> Charge:
        raw, intent_status = await self._charge_raw(charge_id)
        return parse_charge(raw, intent_status)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return parse_subscription(await self._subscription_raw(subscription_id))

    async def _customers_by_email(self, email: str) -> list[dict[str, Any]]:
        async def searched_email() -> list[dict[str, Any]]:
            try:
                found = await self._api.get(
                    lambda: self._api.v1.customers.search_async(
                        {"query": f"email:{search.quoted(email)}", "limit": 100}
                    ),
                    f"customers with email {email}",
                )
            except GatewayError as exc:
                # Search is missing on some accounts (and in emulators): the list still answers.
                if exc.code in (ErrorCode.not_found, ErrorCode.rejected):
                    return []
                raise
            return list(found.get("data") or [])

        # Search is case-insensitive but lags writes by up to a minute; list is exact
        # and immediate. Together they find every customer with the address.
        searched, listed = await asyncio.gather(
            searched_email(),
            self._api.list(
                lambda p: self._api.v1.customers.list_async(p),
                {"email": email},
                f"customers with email {email}",
                self.max_listed,
            ),
        )
        unique: dict[str, dict[str, Any]] = {}
        for customer in (*searched, *listed):
            if not customer.get("deleted"):
                unique.setdefault(customer["id"], customer)
        return sorted(unique.values(), key=lambda c: c.get("created") or 0, reverse=True)

    async def _customer_of(self, object_id: str) -> str | None:
        """The customer owning any Stripe object we can name; None when there is none."""
        prefix = object_id.split("_", 1)[0]
        v1 = self._api.v1
        if prefix == "cus":
            return object_id
        fetchers: dict[str, Callable[[], Awaitable[Any]]] = {
            "ch": lambda: v1.charges.retrieve_async(object_id),
            "py": lambda: v1.charges.retrieve_async(object_id),
            "pi": lambda: v1.payment_intents.retrieve_async(object_id),
            "in": lambda: v1.invoices.retrieve_async(object_id),
            "sub": lambda: v1.subscriptions.retrieve_async(object_id),
            "dp": lambda: v1.disputes.retrieve_async(object_id),
            "du": lambda: v1.disputes.retrieve_async(object_id),
            "re": lambda: v1.refunds.retrieve_async(object_id),
        }
        fetch = fetchers.get(prefix)
        if fetch is None:
            return None
        found = await self._api.find(fetch, object_id)
        if found is None:
            return None
        if prefix in ("dp", "du", "re"):
            charge_id = expandable_id(found.get("charge"))
            if charge_id is None:
                return None
            charge = await self._api.find(
                lambda: v1.charges.retrieve_async(charge_id), f"charge {charge_id}"
            )
            return expandable_id(charge.get("customer")) if charge else None
        return expandable_id(found.get("customer"))

    async def _charge_raw(self, charge_id: str) -> tuple[dict[str, Any], str | None]:
        """A charge (or a payment intent's latest charge) read now, with its intent's status."""
        v1 = self._api.v1
        if charge_id.startswith("pi_"):
            intent = await self._api.get(
                lambda: v1.payment_intents.retrieve_async(charge_id), f"payment {charge_id}"
            )
            latest = expandable_id(intent.get("latest_charge"))
            if latest is None:
                raise GatewayError(
                    ErrorCode.not_found,
                    f"payment {charge_id} has no charge yet (it is {intent.get('status')})",
                    gateway=NAME,
                )
            charge_id = latest
        if not charge_id.startswith(("ch_", "py_")):
            raise GatewayError(
                ErrorCode.not_found, f"Stripe has no charge {charge_id}", gateway=NAME
            )
        raw = await self._api.get(
            lambda: v1.charges.retrieve_async(charge_id), f"charge {charge_id}"
        )
        return raw, await self._intent_status(raw)

    async def _intent_status(self, charge: Mapping[str, Any]) -> str | None:
        """Only an uncaptured charge needs it: a canceled intent means the hold was voided."""
        intent = charge.get("payment_intent")
        if charge.get("captured", True) or charge.get("refunded") or intent is None:
            return None
        if isinstance(intent, dict):
            return intent.get("status")
        found = await self._api.find(
            lambda: self._api.v1.payment_intents.retrieve_async(intent), f"payment {intent}"
        )
        return found.get("status") if found else None

    async def _subscription_raw(
        self, subscription_id: str, *, expand: list[str] | None = None
    ) -> dict[str, Any]:
        if not subscription_id.startswith("sub_"):
            raise GatewayError(
                ErrorCode.not_found, f"Stripe has no subscription {subscription_id}", gateway=NAME
            )
        params = {"expand": expand} if expand else None
        return await self._api.get(
            lambda: self._api.v1.subscriptions.retrieve_async(subscription_id, params),
            f"subscription {subscription_id}",
        )

    async def _refunds_of(self, charge: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A charge's refunds: embedded when complete, listed when not."""
        if not charge.get("amount_refunded"):
            return []
        embedded = charge.get("refunds")
        if isinstance(embedded, dict) and not embedded.get("has_more"):
            return list(embedded.get("data") or [])
        charge_id = charge["id"]
        return await self._api.list(
            lambda p: self._api.v1.refunds.list_async(p),
            {"charge": charge_id},
            f"refunds of {charge_id}",
            self.max_charges,
        )

    async def _profile(self, customer: dict[str, Any]) -> GatewayProfile:
        customer_id = customer["id"]
        v1 = self._api.v1
        charges, subscriptions, invoices, tax_ids = await asyncio.gather(
            self._api.list(
                lambda p: v1.charges.list_async(p),
                # Refunds come embedded, instead of one more request per refunded charge.
                {"customer": customer_id, "expand": ["data.refunds"]},
                f"charges of {customer_id}",
                self.max_charges,
            ),
            self._api.list(
                lambda p: v1.subscriptions.list_async(p),
                {"customer": customer_id, "status": "all"},
                f"subscriptions of {customer_id}",
                self.max_listed,
            ),
            self._api.list(
                lambda p: v1.invoices.list_async(p),
                {"customer": customer_id},
                f"invoices of {customer_id}",
                self.max_listed,
            ),
            self._api.list(
                lambda p: v1.customers.tax_ids.list_async(customer_id, p),
                {},
                f"tax IDs of {customer_id}",
                self.max_listed,
                page_size=None,
            ),
        )
        statuses, refunds, disputes, discounts, _ = await asyncio.gather(
            self._api.each(self._intent_status(c) for c in charges),
            self._api.each(self._refunds_of(c) for c in charges),
            self._api.each(
                self._api.list(
                    lambda p, cid=c["id"]: v1.disputes.list_async({**p, "charge": cid}),
                    {},
                    f"disputes of {c['id']}",
                    self.max_listed,
                )
                for c in charges
                if c.get("disputed")
            ),
            self._discounts(customer, subscriptions),
            self._with_schedules(subscriptions),
        )
        charges_out = sorted(
            (parse_charge(c, s) for c, s in zip(charges, statuses, strict=True)),
            key=lambda c: (c.created or datetime.min.replace(tzinfo=UTC), c.id),
            reverse=True,
        )
        return GatewayProfile(
            gateway=NAME,
            customer=parse_customer(customer_id, customer),
            charges=tuple(charges_out),
            refunds=tuple(parse_refund(r) for group in refunds for r in group),
            subscriptions=tuple(parse_subscription(s) for s in subscriptions),
            invoices=tuple(
                sorted(
                    (parse_invoice(i) for i in invoices),
                    key=lambda i: (i.created or datetime.min.replace(tzinfo=UTC), i.id),
                    reverse=True,
                )
            ),
            disputes=tuple(parse_dispute(d) for group in disputes for d in group),
            tax_ids=tuple(parse_tax_id(t) for t in tax_ids),
            discounts=tuple(discounts),
        )

    async def _with_schedules(self, subscriptions: list[dict[str, Any]]) -> None:
        """Each live subscription's schedule in place of its ID, for a plan change waiting
        for the renewal; read one by one, as not every Stripe-compatible server expands it."""
        scheduled = [
            s for s in subscriptions
            if isinstance(s.get("schedule"), str) and s.get("status") not in plans.ENDED
        ]  # fmt: skip
        found = await self._api.each(
            self._api.get(
                lambda sid=s["schedule"]: self._api.v1.subscription_schedules.retrieve_async(sid),
                f"the schedule of {s['id']}",
            )
            for s in scheduled
        )
        for sub, schedule in zip(scheduled, found, strict=True):
            sub["schedule"] = schedule

    # --- discounts -------------------------------------------------------------------------

    async def _discounts(
        self, customer: Mapping[str, Any], subscriptions: list[dict[str, Any]]
    ) -> list[str]:
        """Human descriptions of the customer's discount and their live subscriptions' ones."""
        found: list[dict[str, Any]] = []
        if isinstance(customer.get("discount"), dict):
            found.append(customer["discount"])
        for sub in subscriptions:
            if sub.get("status") in ("canceled", "incomplete_expired"):
                continue
            if isinstance(sub.get("discount"), dict):  # API versions before 2025-03-31
                found.append(sub["discount"])
            listed = sub.get("discounts") or []
            if any(isinstance(d, str) for d in listed):
                sub = await self._subscription_raw(sub["id"], expand=["discounts"])
                listed = sub.get("discounts") or []
            found.extend(d for d in listed if isinstance(d, dict))
        described: list[str] = []
        seen: set[str] = set()
        for discount in found:
            key = discount.get("id") or json.dumps(discount, sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            described.append(await self._describe(discount))
        return described

    async def _describe(self, discount: Mapping[str, Any]) -> str:
        coupon: Any = discount.get("coupon")  # before 2025-09-30 the coupon sat here
        source = discount.get("source")
        if coupon is None and isinstance(source, dict):
            coupon = source.get("coupon")
        if isinstance(coupon, str):
            coupon_id = coupon
            coupon = await self._api.get(
                lambda: self._api.v1.coupons.retrieve_async(coupon_id), f"coupon {coupon_id}"
            )
        if not isinstance(coupon, dict):
            return str(discount.get("id") or "discount")
        code = None
        promotion = discount.get("promotion_code")
        if isinstance(promotion, dict):
            code = promotion.get("code")
        elif isinstance(promotion, str):
            promo = await self._api.find(
                lambda: self._api.v1.promotion_codes.retrieve_async(promotion),
                f"promotion code {promotion}",
            )
            code = promo.get("code") if promo else None
        return describe_discount(coupon, code)

    async def _resolve_coupon(self, code: str) -> tuple[dict[str, str], dict[str, Any], str | None]:
        """`promo_...`, a customer-facing promotion code, or a coupon ID: what to apply, and the coupon."""
        v1 = self._api.v1
        promo: dict[str, Any] | None = None
        if code.startswith("promo_"):
            promo = await self._api.get(
                lambda: v1.promotion_codes.retrieve_async(code), f"promotion code {code}"
            )
        else:
            matches = await self._api.get(
                lambda: v1.promotion_codes.list_async({"code": code, "active": True, "limit": 1}),
                f"promotion code {code}",
            )
            promo = (matches.get("data") or [None])[0]
        if promo is not None:
            coupon: Any = promo.get("coupon")  # before 2025-09-30
            promotion = promo.get("promotion")
            if coupon is None and isinstance(promotion, dict):
                coupon = promotion.get("coupon")
            if isinstance(coupon, str):
                coupon_id = coupon
                coupon = await self._api.get(
                    lambda: v1.coupons.retrieve_async(coupon_id), f"coupon {coupon_id}"
                )
            return {"promotion_code": promo["id"]}, coupon or {}, promo.get("code")
        coupon = await self._api.get(lambda: v1.coupons.retrieve_async(code), f"coupon {code}")
        return {"coupon": coupon["id"]}, coupon, None

    # --- actions ---------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        raw, intent_status = await self._charge_raw(charge_id)
        earlier = await self._refund_with_key(raw, idempotency_key)
        if earlier is not None:
            return parse_refund(earlier)
        charge = parse_charge(raw, intent_status)
        check_refund(charge, amount)
        params: dict[str, Any] = {
            "charge": charge.id,
            "amount": to_stripe_amount(amount),
            "metadata": {KEY_META: idempotency_key, REASON_META: clip_metadata(reason)},
        }
        stripe_reason = stripe_refund_reason(reason)
        if stripe_reason:
            params["reason"] = stripe_reason
        try:
            created = await self._api.get(
                lambda: self._api.v1.refunds.create_async(
                    params, {"idempotency_key": idempotency_key}
                ),
                f"the refund of {charge.id}",
            )
        except GatewayError as exc:
            if exc.code in (ErrorCode.amount_too_large, ErrorCode.already_refunded):
                # Money moved since our read (a dashboard refund): say how much is left.
                fresh_raw, fresh_status = await self._charge_raw(charge.id)
                try:
                    check_refund(parse_charge(fresh_raw, fresh_status), amount)
                except GatewayError as ours:
                    ours.raw_code, ours.raw_message = exc.raw_code, exc.raw_message
                    raise ours from None
            raise
        return parse_refund(created)

    async def _refund_with_key(
        self, charge: Mapping[str, Any], idempotency_key: str
    ) -> dict[str, Any] | None:
        for refund in await self._refunds_of(charge):
            if metadata_of(refund).get(KEY_META) == idempotency_key:
                return refund
        return None

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        raw, intent_status = await self._charge_raw(charge_id)
        charge = parse_charge(raw, intent_status)
        options = {"idempotency_key": idempotency_key}
        intent_id = charge.payment_intent_id
        if intent_id:
            intent_params: dict[str, Any] = {}
            if amount is not None:
                intent_params["amount_to_capture"] = to_stripe_amount(amount)

            def send() -> Awaitable[Any]:
                return self._api.v1.payment_intents.capture_async(intent_id, intent_params, options)
        else:
            charge_params: dict[str, Any] = {}
            if amount is not None:
                charge_params["amount"] = to_stripe_amount(amount)

            def send() -> Awaitable[Any]:
                return self._api.v1.charges.capture_async(charge.id, charge_params, options)

        try:
            check_capture(charge, amount)
        except GatewayError:
            # Captured already: by this very request (same key) Stripe answers from its
            # cache and we report success; by another, Stripe refuses and so do we.
            if charge.status != ChargeStatus.authorized and await self._api.replayed(send):
                return await self.get_charge(charge.id)
            raise
        await self._api.attempt(send, f"the capture of {charge.id}")
        return await self.get_charge(charge.id)

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        raw, intent_status = await self._charge_raw(charge_id)
        charge = parse_charge(raw, intent_status)
        options = {"idempotency_key": idempotency_key}
        intent_id = charge.payment_intent_id
        if intent_id:

            def send() -> Awaitable[Any]:
                return self._api.v1.payment_intents.cancel_async(intent_id, None, options)
        else:
            # A charge made without an intent releases its hold by being refunded in full.
            params = {"charge": charge.id, "metadata": {KEY_META: idempotency_key}}

            def send() -> Awaitable[Any]:
                return self._api.v1.refunds.create_async(params, options)

        try:
            require_status(charge, ChargeStatus.authorized, "voided")
        except GatewayError:
            # Voided already: a retry of ours is replayed by Stripe, anything else refused.
            if charge.status == ChargeStatus.voided and await self._api.replayed(send):
                return charge
            raise
        await self._api.attempt(send, f"the void of {charge.id}")
        return await self.get_charge(charge.id)

    async def subscription_payment(self, subscription_id: str) -> PaidPeriod:
        """The newest paid invoice's payment (its invoice payments name it since API
        2025-03-31), for the subscription's current period."""
        sub = await self._subscription_raw(subscription_id)
        v1 = self._api.v1
        invoices = await self._api.get(
            lambda: v1.invoices.list_async(
                {"subscription": subscription_id, "status": "paid", "limit": 1}
            ),
            f"paid invoices of {subscription_id}",
        )
        newest = next(iter(invoices.get("data") or []), None)
        paid_by = None
        if newest is not None:
            invoice_id = str(newest["id"])
            payments = await self._api.get(
                lambda: v1.invoice_payments.list_async({"invoice": invoice_id}),
                f"payments of invoice {invoice_id}",
            )
            paid_by = next(
                (p for p in map(invoice_payment_id, payments.get("data") or []) if p), None
            )
        period = subscription_period(sub)
        if paid_by is None or period is None:
            raise nothing_paid(NAME, subscription_id, "no paid invoice with a payment")
        return PaidPeriod(await self.get_charge(paid_by), *period)

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        sub = await self._subscription_raw(subscription_id)
        ours = metadata_of(sub).get(KEY_META) == idempotency_key
        if sub.get("status") in ("canceled", "incomplete_expired"):
            if ours:
                return parse_subscription(sub)
            raise GatewayError(
                ErrorCode.invalid_state,
                f"subscription {subscription_id} is already canceled",
                gateway=NAME,
            )
        what = f"the cancellation of {subscription_id}"
        marker = {KEY_META: idempotency_key, REASON_META: clip_metadata(reason)}
        if at_period_end:
            if sub.get("cancel_at_period_end"):
                if ours:
                    return parse_subscription(sub)
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"subscription {subscription_id} is already set to cancel at period end",
                    gateway=NAME,
                )
            updated = await self._api.get(
                lambda: self._api.v1.subscriptions.update_async(
                    subscription_id,
                    {"cancel_at_period_end": True, "metadata": marker},
                    {"idempotency_key": idempotency_key},
                ),
                what,
            )
            return parse_subscription(updated)
        if not ours:
            # DELETE takes no idempotency key at Stripe: mark the subscription first so a
            # retry can tell its own cancellation from someone else's.
            await self._api.get(
                lambda: self._api.v1.subscriptions.update_async(
                    subscription_id,
                    {"metadata": marker},
                    {"idempotency_key": f"{idempotency_key}:mark"},
                ),
                what,
            )
        canceled = await self._api.get(
            lambda: self._api.v1.subscriptions.cancel_async(
                subscription_id,
                {"cancellation_details": {"comment": reason[:5000]}},
                {"idempotency_key": idempotency_key},
            ),
            what,
        )
        return parse_subscription(canceled)

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
        existing = await self._api.list(
            lambda p: self._api.v1.subscriptions.list_async(p),
            {"customer": customer_id, "status": "all"},
            f"subscriptions of {customer_id}",
            self.max_listed,
        )
        for sub in existing:
            if metadata_of(sub).get(KEY_META) == idempotency_key:
                return parse_subscription(sub)
        discount = (await self._resolve_coupon(coupon))[0] if coupon else None
        params = plans.create_params(
            customer_id, price, idempotency_key,
            quantity=quantity, trial_days=trial_days, discount=discount,
        )  # fmt: skip
        created = await self._api.get(
            lambda: self._api.v1.subscriptions.create_async(
                params, {"idempotency_key": idempotency_key}
            ),
            f"a subscription to {price} for {customer_id}",
        )
        return parse_subscription(created)

    async def get_price(self, price: str) -> PlanPrice:
        return await plans.get_price(self._api, price)

    async def preview_plan_change(
        self, subscription_id: str, price: str, *, now: bool, prorate: bool, at: int | None = None
    ) -> PlanChange:
        sub, plan = await asyncio.gather(
            self._subscription_raw(subscription_id), plans.get_price(self._api, price)
        )
        when = at or int(datetime.now(UTC).timestamp())
        return await plans.preview(self._api, sub, plan, now=now, prorate=prorate, at=when)

    async def change_plan(self, change: PlanChange, *, idempotency_key: str) -> Subscription:
        sub = await self._subscription_raw(change.subscription_id)
        if change.now:
            changed = await plans.change_plan(self._api, sub, change, idempotency_key)
            return parse_subscription(changed)
        await plans.schedule_change(self._api, sub, change, idempotency_key)
        return parse_subscription(
            await self._subscription_raw(change.subscription_id, expand=["schedule"])
        )

    async def set_paused(
        self, subscription_id: str, paused: bool, *, idempotency_key: str
    ) -> Subscription:
        sub = await self._subscription_raw(subscription_id)
        return parse_subscription(await plans.set_paused(self._api, sub, paused, idempotency_key))

    async def _coupon_subscriptions(self, target_id: str, doing: str) -> list[dict[str, Any]]:
        """The subscription, or the customer's live ones, that a coupon goes on or comes off."""
        if target_id.startswith("sub_"):
            return [await self._subscription_raw(target_id, expand=["discounts"])]
        if not target_id.startswith("cus_"):
            raise GatewayError(
                ErrorCode.rejected,
                f"a Stripe coupon goes on a customer (cus_...) or a subscription (sub_...), not {target_id}",
                gateway=NAME,
            )
        listed = await self._api.list(
            lambda p: self._api.v1.subscriptions.list_async(p),
            {"customer": target_id, "expand": ["data.discounts"]},
            f"subscriptions of {target_id}",
            self.max_listed,
        )
        subs = [s for s in listed if s.get("status") not in ("canceled", "incomplete_expired")]
        if not subs:
            # Since API 2025-03-31 a coupon lives on subscriptions, not on the customer.
            raise GatewayError(
                ErrorCode.invalid_state,
                f"customer {target_id} has no live subscription to {doing}",
                gateway=NAME,
            )
        return subs

    async def coupon(self, code: str, *, currency: str | None = None) -> Coupon:
        _, raw, promo_code = await self._resolve_coupon(code)
        if raw.get("valid") is False:
            raise GatewayError(
                ErrorCode.invalid_state, f"coupon {code} is no longer valid", gateway=NAME
            )
        return coupon_of(raw, promo_code)

    async def remove_discount(self, target_id: str, *, idempotency_key: str) -> str:
        """Clear the subscription's discounts (each live one's, for a customer, and the
        customer's own from before API 2025-03-31); gone already, nothing is sent."""
        v1 = self._api.v1
        if target_id.startswith("cus_"):
            # DELETE takes no idempotency key: a repeat finds nothing (404) and moves on.
            await self._api.find(
                lambda: v1.customers.delete_discount_async(target_id),
                f"the discount of {target_id}",
            )
        try:
            subs = await self._coupon_subscriptions(target_id, "remove a discount from")
        except GatewayError as exc:
            if exc.code != ErrorCode.invalid_state or not target_id.startswith("cus_"):
                raise
            subs = []  # a customer without live subscriptions: only their own discount went
        for sub in subs:
            if not sub.get("discounts") and not sub.get("discount"):
                continue
            sub_id = sub["id"]
            await self._api.get(
                lambda sid=sub_id: v1.subscriptions.update_async(
                    sid, {"discounts": ""}, {"idempotency_key": f"{idempotency_key}:{sid}"}
                ),
                f"the discounts of {sub_id}",
            )
        return target_id

    async def apply_coupon(self, target_id: str, code: str, *, idempotency_key: str) -> str:
        subs = await self._coupon_subscriptions(target_id, f"apply {code} to")
        wanted, coupon, promo_code = await self._resolve_coupon(code)
        for sub in subs:
            if sub.get("status") in ("canceled", "incomplete_expired"):
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"subscription {sub['id']} is canceled",
                    gateway=NAME,
                )
            current = [d for d in sub.get("discounts") or [] if isinstance(d, dict)]
            if any(discount_applies(d, wanted, coupon) for d in current):
                continue  # already there: applying twice is applying once
            # A populated `discounts` replaces the list, so the current ones go along.
            discounts = [{"discount": d["id"]} for d in current] + [wanted]
            sub_id = sub["id"]
            await self._api.get(
                lambda sid=sub_id, ds=discounts: self._api.v1.subscriptions.update_async(
                    sid, {"discounts": ds}, {"idempotency_key": f"{idempotency_key}:{sid}"}
                ),
                f"the coupon on {sub_id}",
            )
        return describe_discount(coupon, promo_code)

    async def add_tax_id(
        self, customer_id: str, tax_id: str, *, idempotency_key: str, replace: bool = False
    ) -> TaxId:
        kind, value = await self._checked_tax_id(customer_id, tax_id)
        v1 = self._api.v1
        existing = await self._api.list(
            lambda p: v1.customers.tax_ids.list_async(customer_id, p),
            {},
            f"tax IDs of {customer_id}",
            self.max_listed,
            page_size=None,
        )
        # Already there (a retry of ours, or the customer had it): nothing to add.
        kept = next(
            (t for t in existing if t.get("type") == kind and t.get("value") == value), None
        )
        if kept is None:
            kept = await self._api.get(
                lambda: v1.customers.tax_ids.create_async(
                    customer_id,
                    {"type": kind, "value": value},
                    {"idempotency_key": idempotency_key},
                ),
                f"tax ID {value} for {customer_id}",
            )
        if replace:
            # Only once the new ID exists: a failure above leaves the old ones in place.
            for old in existing:
                if old["id"] != kept["id"]:
                    await self._delete_tax_id(customer_id, old["id"])
        return parse_tax_id(kept)

    async def _checked_tax_id(self, customer_id: str, tax_id: str) -> tuple[str, str]:
        """Type and number, checked before Stripe is asked.

        Only a number that names no type (no prefix) costs a read: the customer's
        country then says what it should be (an ABN in AU, a VAT number in FR).
        """
        try:
            return checked_tax_id(tax_id, country=None, gateway=NAME, unchecked_types=True)
        except InvalidTaxId as exc:
            if exc.kind is not None:
                raise  # its type is known and it fails it: no country changes that
        customer = await self._api.get(
            lambda: self._api.v1.customers.retrieve_async(customer_id), f"customer {customer_id}"
        )
        country = (customer.get("address") or {}).get("country")
        return checked_tax_id(tax_id, country=country, gateway=NAME, unchecked_types=True)

    async def _delete_tax_id(self, customer_id: str, tax_id_id: str) -> None:
        try:
            await self._api.get(
                lambda: self._api.v1.customers.tax_ids.delete_async(customer_id, tax_id_id),
                f"tax ID {tax_id_id} of {customer_id}",
            )
        except GatewayError as exc:
            if exc.code != ErrorCode.not_found:  # gone already: what we wanted
                raise

    async def remove_tax_id(self, customer_id: str, tax_id: str, *, idempotency_key: str) -> str:
        """Delete the customer's tax IDs with this number (or this `txi_` ID); a retry finds none."""
        number = normalize_tax_id(tax_id)
        existing = await self._api.list(
            lambda p: self._api.v1.customers.tax_ids.list_async(customer_id, p),
            {}, f"tax IDs of {customer_id}", self.max_listed, page_size=None,
        )  # fmt: skip
        for old in existing:
            if old["id"] == tax_id or normalize_tax_id(str(old.get("value") or "")) == number:
                await self._delete_tax_id(customer_id, old["id"])
        return number

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        address: Address | None = None,
        idempotency_key: str,
    ) -> Customer:
        """`POST /v1/customers/{id}`; an address replaces the whole address ("" clears a field)."""
        params: dict[str, Any] = {}
        if name is not None:
            params["name"] = name
        if address is not None:
            params["address"] = {k: getattr(address, k) or "" for k in ADDRESS_FIELDS}
        raw = await self._api.get(
            lambda: self._api.v1.customers.update_async(
                customer_id, params, {"idempotency_key": idempotency_key}
            ),
            f"customer {customer_id}",
        )
        return parse_customer(customer_id, raw)

    async def card_update_url(self, customer_id: str, *, return_url: str) -> str:
        """A Billing Portal session: Stripe's own page, where the customer changes their card."""
        what = f"customer {customer_id}"
        if not customer_id.startswith("cus_"):
            raise GatewayError(ErrorCode.not_found, f"Stripe has no {what}", gateway=NAME)
        try:
            session = await self._api.get(
                lambda: self._api.v1.billing_portal.sessions.create_async(
                    {"customer": customer_id, "return_url": return_url}
                ),
                f"a Billing Portal session for {what}",
            )
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found:  # the only object the call names
                raise GatewayError(
                    ErrorCode.not_found,
                    f"Stripe has no {what}",
                    gateway=NAME,
                    raw_code=exc.raw_code,
                    raw_message=exc.raw_message,
                ) from None
            if exc.code == ErrorCode.rejected and portal_unconfigured(exc.raw_message):
                raise GatewayError(
                    ErrorCode.not_configured,
                    "Stripe's Billing Portal is not configured: save the customer portal "
                    "settings in the Stripe dashboard (Settings → Billing → Customer portal; "
                    "test mode has its own), with payment method updates turned on",
                    gateway=NAME,
                    raw_code=exc.raw_code,
                    raw_message=exc.raw_message,
                ) from None
            raise
        url = session.get("url")
        if not isinstance(url, str) or not url:
            raise GatewayError(
                ErrorCode.unavailable,
                f"Stripe answered the Billing Portal session for {what} without a URL",
                gateway=NAME,
            )
        return url

    # --- new payments (bot/gateways/stripe/payments.py) ----------------------------------

    async def charge_saved_card(
        self, customer_id: str, amount: Money, *, description: str, idempotency_key: str
    ) -> Charge:
        charge_id = await payments.charge_off_session(
            self._api, customer_id, amount, description=description, key=idempotency_key
        )
        return await self.get_charge(charge_id)

    async def create_pay_link(
        self, customer_id: str, amount: Money, *, description: str, reference: str,
        idempotency_key: str,
    ) -> PayLink:  # fmt: skip
        return await payments.create_session(
            self._api, customer_id, amount, description=description, reference=reference,
            key=idempotency_key,
        )  # fmt: skip

    async def get_pay_link(self, link_id: str) -> PayLink:
        return await payments.get_session(self._api, link_id)

    async def cancel_pay_link(self, link_id: str) -> PayLink:
        return await payments.expire_session(self._api, link_id)

    async def get_dispute(self, dispute_id: str) -> Dispute:
        return parse_dispute(await disputes.read(self._api, dispute_id))

    async def open_disputes(self) -> list[Dispute]:
        return await disputes.open_disputes(self._api)

    async def accept_dispute(self, dispute_id: str, *, idempotency_key: str) -> Dispute:
        return await disputes.accept(self._api, dispute_id, idempotency_key)

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: Evidence, *, idempotency_key: str
    ) -> Dispute:
        return await disputes.submit(self._api, dispute_id, evidence, idempotency_key)

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        if not invoice_id.startswith("in_"):
            raise GatewayError(
                ErrorCode.not_found, f"Stripe has no invoice {invoice_id}", gateway=NAME
            )
        v1 = self._api.v1
        what = f"invoice {invoice_id}"
        raw = await self._api.get(lambda: v1.invoices.retrieve_async(invoice_id), what)
        if raw.get("collection_method") != "send_invoice":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"invoice {invoice_id} is charged automatically: Stripe only emails invoices "
                "whose collection method is send_invoice",
                gateway=NAME,
            )
        if raw.get("status") == "draft":
            # auto_advance off: Stripe would otherwise email it too, on its own schedule.
            raw = await self._api.get(
                lambda: v1.invoices.finalize_invoice_async(
                    invoice_id,
                    {"auto_advance": False},
                    {"idempotency_key": f"{idempotency_key}:finalize"},
                ),
                what,
            )
        if raw.get("status") != "open":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"invoice {invoice_id} is {raw.get('status')}: only open invoices are sent",
                gateway=NAME,
            )
        sent = await self._api.get(
            lambda: v1.invoices.send_invoice_async(
                invoice_id, None, {"idempotency_key": f"{idempotency_key}:send"}
            ),
            what,
        )
        return parse_invoice(sent)

    # --- webhooks --------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        secret = self.settings.webhook_secret
        return verify_and_parse(
            body,
            headers,
            secret.get_secret_value() if secret is not None else None,
            self.settings.webhook_tolerance,
        )
