"""The Braintree gateway: reads and actions through `BraintreeAPI`, objects through `mapping`.

- Lookup by e-mail runs Braintree's customer search and its transaction search by
  customer e-mail at once: stored customers come with all their transactions (by
  customer ID) and the subscriptions of their payment methods; payments made
  without a stored customer ("guests") form one profile keyed by the e-mail.
- Refunds are transactions of their own (type `credit`). Braintree refunds only
  settled payments (error 91506), and on most accounts not while settling (91574):
  the whole of an unsettled payment is voided instead, and said so; a part of it
  is refused until it settles. Authorized payments are voided, not refunded.
- Braintree's REST API honours no idempotency key, so a refund carries ours in its
  order ID: every refund first reads the payment's refunds back and returns the one
  with our key, and a refund whose answer was lost (timeout) is read back at once.
  Captures, voids and cancellations settle an unknown outcome by re-reading the
  object; its status history says whether the API (us) or the Control Panel did it.
- Cancelling a subscription is immediate and final; "at period end" sets its number
  of billing cycles to the current one, so it expires when the period ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from bot.disputes.evidence import Evidence
from bot.gateways.base import (
    Capability,
    ErrorCode,
    Gateway,
    GatewayError,
    LookupQuery,
    SyncPage,
    Unsupported,
    split_name,
)
from bot.gateways.braintree import discounts, disputes, sales, search, sync
from bot.gateways.braintree.client import BraintreeAPI
from bot.gateways.braintree.mapping import (
    CAPTURED,
    NAME,
    SETTLING,
    UNSETTLED,
    VOIDED,
    as_utc,
    changed_through_api,
    customer_id_of,
    ends_at_period_end,
    field,
    guest_customer,
    interval,
    is_refund,
    last_change,
    money_from_braintree,
    money_to_braintree,
    order_marker,
    parse_customer,
    parse_dispute,
    parse_refund,
    parse_subscription,
    parse_transaction,
    voided_instead,
)
from bot.gateways.braintree.webhooks import verify_and_parse
from bot.gateways.checks import check_capture, check_refund, require_status, same_currency
from bot.gateways.events import GatewayEvent
from bot.gateways.proration import prorated_days
from bot.gateways.termination import PaidPeriod, nothing_paid
from bot.models import (
    Address,
    Charge,
    ChargeStatus,
    Coupon,
    Customer,
    Dispute,
    GatewayProfile,
    PlanChange,
    PlanPrice,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from bot.money import Money
from bot.settings import BraintreeSettings

# The outcome of a write that ended so is unknown: Braintree may have done it.
_UNKNOWN = frozenset({ErrorCode.timeout, ErrorCode.unavailable})
MAX_CUSTOMERS = 20  # stored customers sharing one e-mail, shown per lookup
CONTROL_PANEL = {
    "sandbox": "https://sandbox.braintreegateway.com",
    "production": "https://www.braintreegateway.com",
}
# Braintree's generated transaction IDs: short, lowercase letters and digits.
_TRANSACTION_ID = re.compile(r"[a-z0-9]{6,12}")


class BraintreeGateway(Gateway):
    """Braintree (a PayPal service): customers, payments, refunds, subscriptions, disputes.

    `backoff` is the first read retry's mean pause in seconds (doubling after);
    `max_charges` caps how many of a customer's transactions a lookup fetches, newest first.
    """

    name = NAME
    capabilities = frozenset(
        {
            Capability.lookup,
            Capability.refund,
            Capability.partial_refund,
            Capability.capture,
            Capability.void,
            Capability.cancel_subscription,
            Capability.create_subscription,
            Capability.change_plan,
            Capability.cancel_with_refund,
            Capability.disputes,
            Capability.accept_dispute,
            Capability.dispute_evidence,
            Capability.webhooks,
            Capability.coupon,
            Capability.customer_details,
            Capability.charge_saved_card,
            Capability.sync,
        }
    )
    limits: ClassVar[Mapping[Capability, str]] = {
        Capability.charge_saved_card: "in a currency the customer paid in before",
        Capability.refund: "settled payments; an unsettled one is voided, in full",
        Capability.partial_refund: "settled payments only",
        Capability.cancel_subscription: "at period end by ending its billing cycles",
        Capability.coupon: "the account's discounts, on subscriptions only",
        Capability.create_subscription: "one seat, on the customer's default payment method",
        # Braintree has no invoices; disputes have no creation-time search.
        Capability.sync: "no invoices (Braintree has none); disputes found by the day received",
        Capability.change_plan: "from now only, prorated by the day",
        # Braintree announces refunds only for bank payments (ACH, SEPA), when they settle.
        Capability.webhooks: "no refund notices for card payments",
    }
    missing: ClassVar[Mapping[Capability, str]] = {
        Capability.payment_link: "Braintree has no pay page of its own: its Drop-in UI runs "
        "on your site",
        Capability.pause_subscription: "Braintree has no pause: cancel the subscription "
        "(at period end), then subscribe the customer again",
    }

    def __init__(
        self, settings: BraintreeSettings, *, backoff: float = 0.5, max_charges: int = 1000
    ) -> None:
        self._api = BraintreeAPI(settings, backoff=backoff)
        self.settings = settings
        self.max_charges = max_charges
        # Facts that do not change: a merchant account's currency, a plan's billing frequency.
        self._currencies: dict[str, str] = {}
        self._frequencies: dict[str, int | None] = {}

    async def close(self) -> None:
        await self._api.close()

    async def get_dispute(self, dispute_id: str) -> Dispute:
        return parse_dispute(await disputes.read(self._api, dispute_id))

    async def open_disputes(self) -> list[Dispute]:
        return await disputes.open_disputes(self._api)

    async def accept_dispute(self, dispute_id: str, *, idempotency_key: str) -> Dispute:
        return await disputes.accept(self._api, dispute_id)

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: Evidence, *, idempotency_key: str
    ) -> Dispute:
        return await disputes.submit(self._api, dispute_id, evidence, idempotency_key)

    def dashboard_url(self, object_id: str) -> str | None:
        """A payment's or refund's page in the Braintree Control Panel (None for a local base URL)."""
        if self.settings.base_url is not None or not _TRANSACTION_ID.fullmatch(object_id):
            return None
        site = CONTROL_PANEL[self.settings.environment]
        return f"{site}/merchants/{self.settings.merchant_id}/transactions/{object_id}"

    # --- single reads --------------------------------------------------------------------

    async def _sale(self, charge_id: str) -> Any:
        """A payment (a sale transaction), read afresh."""
        transaction = await self._api.transaction(charge_id)
        if transaction is None:
            raise GatewayError(
                ErrorCode.not_found, f"Braintree has no transaction {charge_id}", gateway=NAME
            )
        if is_refund(transaction):
            raise GatewayError(
                ErrorCode.not_found,
                f"Braintree transaction {charge_id} is a refund, not a payment",
                gateway=NAME,
            )
        return transaction

    async def _refunds(self, sale: Any) -> list[Any]:
        """A payment's refunds, as transactions, read afresh."""
        ids = [str(i) for i in field(sale, "refund_ids") or []]
        found = await asyncio.gather(*(self._api.transaction(i) for i in ids))
        return [f for f in found if f is not None]

    async def sync_page(
        self, kind: str, cursor: str | None, *, since: datetime | None, limit: int
    ) -> SyncPage:
        """A page of `kind` in creation order (bot/gateways/braintree/sync.py), as our models:
        a sale with its refunds read, a subscription with its owner and currency."""
        found, after, more = await sync.raw_page(self._api, kind, cursor, since=since, limit=limit)
        objects: list[Any]
        if kind == "customer":
            objects = [parse_customer(c) for c in found]
        elif kind == "charge":
            refunds = await asyncio.gather(*(self._refunds(s) for s in found))
            objects = [parse_transaction(s, r) for s, r in zip(found, refunds, strict=True)]
        elif kind == "refund":
            objects = [parse_refund(c) for c in found]
        elif kind == "subscription":
            contexts = await asyncio.gather(*(self._context(s) for s in found))
            objects = [c.parse(s) for c, s in zip(contexts, found, strict=True)]
        else:
            objects = [parse_dispute(d) for d in found]
        return SyncPage(objects, after, more)

    async def get_charge(self, charge_id: str) -> Charge:
        sale = await self._sale(charge_id)
        return parse_transaction(sale, await self._refunds(sale))

    async def get_subscription(self, subscription_id: str) -> Subscription:
        subscription = await self._subscription_object(subscription_id)
        return (await self._context(subscription)).parse(subscription)

    async def _subscription_object(self, subscription_id: str) -> Any:
        subscription = await self._api.subscription(subscription_id)
        if subscription is None:
            raise GatewayError(
                ErrorCode.not_found,
                f"Braintree has no subscription {subscription_id}",
                gateway=NAME,
            )
        return subscription

    async def _owner(self, subscription: Any) -> str:
        """The customer a subscription bills: named by its payments, else by its payment method.

        Blank when neither says (a payment method deleted since): the subscription still shows.
        """
        for transaction in field(subscription, "transactions") or []:
            details = field(transaction, "customer_details")
            if field(details, "id"):
                return str(details.id)
        token = field(subscription, "payment_method_token")
        method = await self._api.payment_method(token) if token else None
        return str(field(method, "customer_id") or "")

    async def _context(self, subscription: Any, owner: str | None = None) -> _Context:
        """What reading a subscription needs beyond itself: its owner, currency, billing frequency.

        Read before any change is sent, so no read after it can fail a change that was made.
        """
        owner_read = self._owner(subscription) if owner is None else _known(owner)
        found_owner, currency, frequency = await asyncio.gather(
            owner_read,
            self._currency(subscription),
            self._frequency(field(subscription, "plan_id")),
        )
        return _Context(found_owner, currency, frequency)

    async def _currency(self, subscription: Any) -> str:
        """A subscription's currency: its payments', else its merchant account's (it has none)."""
        for transaction in field(subscription, "transactions") or []:
            if field(transaction, "currency_iso_code"):
                return str(transaction.currency_iso_code)
        account = field(subscription, "merchant_account_id")
        if account and account not in self._currencies:
            found = await self._api.merchant_account(str(account))
            self._currencies[account] = str(found.currency_iso_code)
        if account:
            return self._currencies[account]
        raise GatewayError(
            ErrorCode.not_found,
            f"Braintree names no merchant account for subscription {subscription.id}",
            gateway=NAME,
        )

    async def _frequency(self, plan_id: str | None) -> int | None:
        if not plan_id:
            return None
        if plan_id not in self._frequencies:
            plan = await self._api.plan(plan_id)
            frequency = field(plan, "billing_frequency")
            self._frequencies[plan_id] = int(frequency) if frequency else None
        return self._frequencies[plan_id]

    # --- lookup --------------------------------------------------------------------------

    lookup_kinds = frozenset({"email", "id", "name", "partial_email"})

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        if query.kind in ("name", "partial_email"):  # the pick list needs the customer only
            found = await search.customers(self._api, query)
            return [GatewayProfile(gateway=NAME, customer=parse_customer(c)) for c in found]
        if query.kind == "email":
            return await self._by_email(query.value.lower())
        value = query.value.strip()
        if "@" in value:  # a guest's customer ID is their e-mail
            email = value.lower()
            return [p for p in await self._by_email(email) if p.customer.id == email]
        return await self._by_id(value)

    async def _by_email(self, email: str) -> list[GatewayProfile]:
        customers, paid = await asyncio.gather(
            self._api.customers_by_email(email, MAX_CUSTOMERS),
            self._api.transactions_of(customer_email=email, cap=self.max_charges),
        )
        found = {str(c.id): c for c in customers}
        # Payments made with this e-mail by a customer stored under another one since.
        others = {
            str(t.customer_details.id)
            for t in paid
            if field(field(t, "customer_details"), "id") and str(t.customer_details.id) not in found
        }
        for other in await asyncio.gather(*(self._api.customer(i) for i in sorted(others))):
            if other is not None and len(found) < MAX_CUSTOMERS:
                found[str(other.id)] = other
        profiles = list(await asyncio.gather(*(self._profile(c) for c in found.values())))
        guests = [t for t in paid if not field(field(t, "customer_details"), "id")]
        if guests:
            profiles.append(await self._guest_profile(email, guests))
        return profiles

    async def _by_id(self, object_id: str) -> list[GatewayProfile]:
        customer, transaction, subscription, dispute = await asyncio.gather(
            self._api.customer(object_id),
            self._api.transaction(object_id),
            self._api.subscription(object_id),
            self._api.dispute(object_id),
        )
        if customer is not None:
            return [await self._profile(customer)]
        if transaction is None and dispute is not None:
            disputed = field(field(dispute, "transaction_details"), "id")
            transaction = await self._api.transaction(str(disputed)) if disputed else None
        if transaction is not None:
            owner = customer_id_of(transaction)
            if owner and not field(field(transaction, "customer_details"), "id"):
                # A guest's payment: the guest is the e-mail it was made with.
                return [p for p in await self._by_email(owner) if p.customer.id == owner]
        elif subscription is not None:
            owner = await self._owner(subscription)
        else:
            return []
        stored = await self._api.customer(owner) if owner else None
        return [await self._profile(stored)] if stored is not None else []

    async def _profile(self, customer: Any) -> GatewayProfile:
        """A stored customer with their transactions and their payment methods' subscriptions."""
        transactions = await self._api.transactions_of(
            customer_id=str(customer.id), cap=self.max_charges
        )
        subscriptions: dict[str, Any] = {}
        for method in field(customer, "payment_methods") or []:
            for subscription in field(method, "subscriptions") or []:
                subscriptions.setdefault(str(subscription.id), subscription)
        return await self._assemble(
            parse_customer(customer), transactions, list(subscriptions.values())
        )

    async def _guest_profile(self, email: str, transactions: list[Any]) -> GatewayProfile:
        details = field(transactions[0], "customer_details") if transactions else None
        return await self._assemble(guest_customer(email, details), transactions, [])

    async def _assemble(
        self, customer: Customer, transactions: Iterable[Any], subscriptions: list[Any]
    ) -> GatewayProfile:
        sales = [t for t in transactions if not is_refund(t)]
        credits = {str(t.id): t for t in transactions if is_refund(t)}
        # Refunds beyond the search's cap (older than the newest transactions) are read one by one.
        missing = [
            str(r) for s in sales for r in field(s, "refund_ids") or [] if str(r) not in credits
        ]
        for credit in await asyncio.gather(*(self._api.transaction(r) for r in missing)):
            if credit is not None:
                credits[str(credit.id)] = credit
        by_sale: dict[str, list[Any]] = {}
        for credit in credits.values():
            by_sale.setdefault(str(field(credit, "refunded_transaction_id")), []).append(credit)
        charges = tuple(parse_transaction(s, by_sale.get(str(s.id), [])) for s in sales)
        disputes = tuple(
            parse_dispute(d, str(s.id)) for s in sales for d in field(s, "disputes") or []
        )
        contexts = await asyncio.gather(*(self._context(s, customer.id) for s in subscriptions))
        parsed = [c.parse(s) for c, s in zip(contexts, subscriptions, strict=True)]
        return GatewayProfile(
            gateway=NAME,
            customer=customer,
            charges=charges,
            refunds=tuple(parse_refund(c) for c in credits.values()),
            subscriptions=tuple(parsed),
            disputes=disputes,
            discounts=tuple(
                text
                for s, p in zip(subscriptions, parsed, strict=True)
                if p.status != SubscriptionStatus.canceled
                for text in discounts.describe(field(s, "discounts") or [], p.amount.currency, p.id)
            ),
        )

    # --- coupons: the account's discounts, on subscriptions --------------------------------

    async def coupon(self, code: str, *, currency: str | None = None) -> Coupon:
        return await discounts.find(self._api, code, currency)

    async def precheck_coupon(self, target_id: str, *, subscription: bool, remove: bool) -> None:
        if not subscription:
            raise Unsupported(NAME, Capability.coupon, discounts.ON_SUBSCRIPTIONS)

    async def apply_coupon(self, target_id: str, code: str, *, idempotency_key: str) -> str:
        subscription = await self._subscription_object(target_id)
        currency = (await self._context(subscription)).currency
        found = await discounts.find(self._api, code, currency)
        await discounts.change(self._api, subscription, found.code)
        return found.describe()

    async def remove_discount(self, target_id: str, *, idempotency_key: str) -> str:
        await discounts.change(self._api, await self._subscription_object(target_id), None)
        return target_id

    # --- refunds -------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        sale = await self._sale(charge_id)
        refunds = await self._refunds(sale)
        marker = order_marker(idempotency_key)
        earlier = _ours(refunds, marker)
        if earlier is not None:  # this very key refunded already: the same refund again
            return parse_refund(earlier, reason)
        charge = parse_transaction(sale, refunds)
        status = str(sale.status)
        captured_then_voided = status in VOIDED and last_change(
            field(sale, "status_history"), "submitted_for_settlement"
        )
        if status in UNSETTLED or captured_then_voided:
            return await self._void_instead(sale, charge, amount, reason)
        check_refund(charge, amount)
        try:
            credit = await self._api.refund(str(sale.id), money_to_braintree(amount), marker)
        except GatewayError as exc:
            if exc.code in _UNKNOWN:
                found = await self._read_back(charge_id, marker)
                if found is not None:
                    return parse_refund(found, reason)
            if exc.raw_code == "91574" or (exc.raw_code == "91506" and status == SETTLING):
                raise GatewayError(
                    ErrorCode.not_settled,
                    f"charge {charge_id} is settling at Braintree, which refunds it only once "
                    "settled (usually within a day): try again then",
                    gateway=NAME,
                    raw_code=exc.raw_code,
                    raw_message=exc.raw_message,
                ) from None
            raise
        return parse_refund(credit, reason)

    async def precheck_refund(self, charge: Charge, amount: Money) -> None:
        """Part of a payment that has not settled is refused before anyone approves it."""
        status = str((await self._sale(charge.id)).status)
        if status in UNSETTLED and amount != charge.amount:
            raise _part_of_unsettled(charge, status)

    async def _read_back(self, charge_id: str, marker: str) -> Any | None:
        """Our refund, if Braintree made it though its answer was lost; None if not (yet) seen.

        A failure to read leaves the outcome unknown: None, and the caller's error stands.
        """
        try:
            sale = await self._sale(charge_id)
            return _ours(await self._refunds(sale), marker)
        except GatewayError:
            return None

    async def _void_instead(self, sale: Any, charge: Charge, amount: Money, reason: str) -> Refund:
        """Give back an unsettled payment the only way Braintree allows: void all of it."""
        same_currency(charge, amount)
        status = str(sale.status)
        if status in VOIDED:
            # Voided after capture: our own earlier void whose answer was lost, if the API did it.
            history = field(sale, "status_history")
            if amount == charge.amount and changed_through_api(
                history, status, "transaction_source"
            ):
                return voided_instead(sale, reason)
            raise GatewayError(
                ErrorCode.invalid_state,
                f"charge {charge.id} was voided at Braintree: nothing is left to refund",
                gateway=NAME,
                raw_code=status,
            )
        if amount != charge.amount:
            raise _part_of_unsettled(charge, status)
        try:
            voided = await self._api.void(str(sale.id))
        except GatewayError as exc:
            if exc.code not in _UNKNOWN:
                raise
            fresh = await self._api.transaction(str(sale.id))
            if fresh is None or field(fresh, "status") not in VOIDED:
                raise
            voided = fresh
        return voided_instead(voided, reason)

    # --- capture and void ----------------------------------------------------------------

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        sale = await self._sale(charge_id)
        charge = parse_transaction(sale, [])
        if _captured_as_asked(sale, charge, amount):
            return charge  # an earlier attempt of ours whose answer was lost
        check_capture(charge, amount)
        wanted = money_to_braintree(amount) if amount is not None else None
        try:
            captured = await self._api.submit_for_settlement(str(sale.id), wanted)
        except GatewayError as exc:
            if exc.code not in _UNKNOWN:
                raise
            fresh = await self._sale(charge_id)
            if not _captured_as_asked(fresh, parse_transaction(fresh, []), amount):
                raise
            captured = fresh
        return parse_transaction(captured, [])

    async def charge_saved_card(
        self, customer_id: str, amount: Money, *, description: str, idempotency_key: str
    ) -> Charge:
        sale = await sales.charge_vaulted(
            self._api, customer_id, amount, description=description, key=idempotency_key
        )
        return parse_transaction(sale, [])

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        sale = await self._sale(charge_id)
        charge = parse_transaction(sale, [])
        if _voided_through_api(sale):
            return charge  # an earlier attempt of ours whose answer was lost
        require_status(charge, ChargeStatus.authorized, "voided")
        try:
            voided = await self._api.void(str(sale.id))
        except GatewayError as exc:
            if exc.code not in _UNKNOWN:
                raise
            fresh = await self._sale(charge_id)
            if not _voided_through_api(fresh):
                raise
            voided = fresh
        return parse_transaction(voided, [])

    # --- subscriptions -------------------------------------------------------------------

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        address: Address | None = None,
        idempotency_key: str,
    ) -> Customer:
        """The customer's first and last name (`customer.update`), and their first address
        (`address.update`, or `address.create` when they have none): a retry finds the address
        made and updates it, so nothing is made twice."""
        what = f"customer {customer_id}"
        if name is not None:
            first, last = split_name(name)
            names = {"first_name": first, "last_name": last}
            await self._api.write(
                lambda sdk: sdk.customer.update(customer_id, names), verb="update", what=what
            )
        if address is not None:
            fields = {
                "street_address": address.line1 or "", "extended_address": address.line2 or "",
                "locality": address.city or "", "region": address.state or "",
                "postal_code": address.postal_code or "",
                "country_code_alpha2": address.country or "",
            }  # fmt: skip
            held = field(await self._stored_customer(customer_id), "addresses") or []
            if held:
                address_id = str(held[0].id)
                await self._api.write(
                    lambda sdk: sdk.address.update(customer_id, address_id, fields),
                    verb="update", what=f"the address of {what}",
                )  # fmt: skip
            else:
                await self._api.write(
                    lambda sdk: sdk.address.create({"customer_id": customer_id, **fields}),
                    verb="add", what=f"an address to {what}",
                )  # fmt: skip
        return parse_customer(await self._stored_customer(customer_id))

    async def _stored_customer(self, customer_id: str) -> Any:
        found = await self._api.customer(customer_id)
        if found is None:
            raise GatewayError(ErrorCode.not_found, f"no customer {customer_id}", gateway=NAME)
        return found

    async def subscription_payment(self, subscription_id: str) -> PaidPeriod:
        """The newest sale among the subscription's transactions (Braintree lists them newest
        first), and the billing period it paid for (its end date is the last day paid)."""
        subscription = await self._subscription_object(subscription_id)
        sale = next(
            (t for t in field(subscription, "transactions") or []
             if field(t, "type") == "sale" and field(t, "status") not in ("failed", "voided",
                                                                          "gateway_rejected",
                                                                          "processor_declined")),
            None,
        )  # fmt: skip
        paid_for = field(sale, "subscription_details") if sale is not None else None
        start = as_utc(field(paid_for, "billing_period_start_date"))
        last_day = as_utc(field(paid_for, "billing_period_end_date"))
        if sale is None or start is None or last_day is None:
            raise nothing_paid(NAME, subscription_id, "no paid billing period")
        return PaidPeriod(await self.get_charge(str(sale.id)), start, last_day + timedelta(days=1))

    async def get_price(self, price: str) -> PlanPrice:
        plan = await self._api.plan(price)
        if plan is None:
            raise GatewayError(ErrorCode.not_found, f"Braintree has no plan {price}", gateway=NAME)
        return PlanPrice(
            gateway=NAME, id=str(plan.id), name=str(field(plan, "name") or plan.id),
            amount=money_from_braintree(plan.price, str(plan.currency_iso_code)),
            interval=interval(field(plan, "billing_frequency")),
        )  # fmt: skip

    async def precheck_subscription(
        self,
        customer_id: str,
        price: str,
        *,
        quantity: int,
        trial_days: int | None,
        coupon: str | None,
    ) -> None:
        """One seat, a plan the account has, a customer with a default payment method to
        bill: what Braintree needs whatever a manager decides. A trial needs nothing of the
        plan (Braintree lets a subscription set its own), and the coupon is read apart."""
        _one_seat(quantity)
        await self.get_price(price)
        await self._default_token(customer_id)

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
        """On the customer's default payment method. Braintree keeps no key for a create, so
        the subscription's ID is made from it: a retry finds the one it made."""
        _one_seat(quantity)
        sub_id = "cd" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        if await self._api.subscription(sub_id) is None:
            params: dict[str, Any] = {
                "id": sub_id, "plan_id": price,
                "payment_method_token": await self._default_token(customer_id),
            }  # fmt: skip
            if trial_days:
                params |= {"trial_period": True, "trial_duration": trial_days,
                           "trial_duration_unit": "day"}  # fmt: skip
            try:
                await self._api.write(
                    lambda sdk: sdk.subscription.create(params),
                    verb="subscribe", what=f"a subscription to {price} for {customer_id}",
                )  # fmt: skip
            except GatewayError:
                if await self._api.subscription(sub_id) is None:  # an unknown outcome, settled
                    raise
        if coupon is not None:
            await self.apply_coupon(sub_id, coupon, idempotency_key=f"{idempotency_key}:coupon")
        return await self.get_subscription(sub_id)

    async def preview_plan_change(
        self, subscription_id: str, price: str, *, now: bool, prorate: bool, at: int | None = None
    ) -> PlanChange:
        """Braintree has no preview: the difference for the days left in the billing cycle,
        today included, as Braintree prorates a price change (`prorate_charges`)."""
        if not now:
            raise GatewayError(
                ErrorCode.rejected,
                "Braintree changes a plan at once: use `now none` to bill the new price from "
                "the next billing date without proration",
                gateway=NAME,
            )
        subscription = await self._subscription_object(subscription_id)
        plan, context = await asyncio.gather(self.get_price(price), self._context(subscription))
        if plan.amount.currency != context.currency:
            raise GatewayError(
                ErrorCode.currency_mismatch,
                f"plan {price} bills {plan.amount.currency}: {subscription_id} bills "
                f"{context.currency}",
                gateway=NAME,
            )
        when = at or int(datetime.now(UTC).timestamp())
        old = money_from_braintree(subscription.price, context.currency).minor
        first = field(subscription, "billing_period_start_date")
        last = field(subscription, "billing_period_end_date")
        due = 0
        if prorate and first and last:  # a trial has no billing period: nothing to prorate
            today = datetime.fromtimestamp(when, UTC).date()
            due = prorated_days(old, plan.amount.minor, first=first, last=last, today=today)
        return PlanChange(
            gateway=NAME, subscription_id=str(subscription.id), price=plan.id, plan=plan.name,
            now=True, prorate=prorate, at=when, recurring=plan.amount,
            due_now=Money(minor=due, currency=context.currency), interval=plan.interval,
        )  # fmt: skip

    async def change_plan(self, change: PlanChange, *, idempotency_key: str) -> Subscription:
        """Braintree keeps no key for an update: a subscription already on the plan at the
        plan's price is the same result (a retry of ours finds it so)."""
        subscription = await self._subscription_object(change.subscription_id)
        context = await self._context(subscription)
        price = money_to_braintree(change.recurring)
        if (
            field(subscription, "plan_id") == change.price
            and money_from_braintree(subscription.price, context.currency) == change.recurring
        ):
            return context.parse(subscription)
        day = datetime.fromtimestamp(change.at, UTC).date()
        if change.prorate and day != datetime.now(UTC).date():
            raise GatewayError(
                ErrorCode.invalid_state,
                f"the preview was for {day.isoformat()} and Braintree prorates by today's "
                "date: preview the change again",
                gateway=NAME,
            )
        params = {"plan_id": change.price, "price": price,
                  "options": {"prorate_charges": change.prorate}}  # fmt: skip
        what = f"the plan change of {change.subscription_id}"
        try:
            await self._api.write(
                lambda sdk: sdk.subscription.update(change.subscription_id, params),
                verb="change", what=what,
            )  # fmt: skip
        except GatewayError:
            fresh = await self._subscription_object(change.subscription_id)
            if field(fresh, "plan_id") != change.price:  # the outcome, settled by a re-read
                raise
        return context.parse(await self._subscription_object(change.subscription_id))

    async def _default_token(self, customer_id: str) -> str:
        customer = await self._api.customer(customer_id)
        if customer is None:
            raise GatewayError(
                ErrorCode.not_found, f"Braintree has no customer {customer_id}", gateway=NAME
            )
        for method in field(customer, "payment_methods") or []:
            if field(method, "default"):
                return str(method.token)
        raise GatewayError(
            ErrorCode.invalid_state,
            f"customer {customer_id} has no default payment method to bill",
            gateway=NAME,
        )

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        subscription = await self._subscription_object(subscription_id)
        context = await self._context(subscription)
        done = _ending if at_period_end else _canceled_through_api
        if done(subscription):
            return context.parse(subscription)  # already as asked
        if field(subscription, "status") in ("Canceled", "Expired"):
            raise GatewayError(
                ErrorCode.invalid_state,
                f"subscription {subscription_id} is already "
                f"{str(subscription.status).lower()} at Braintree",
                gateway=NAME,
                raw_code=str(subscription.status),
            )
        cycle = int(field(subscription, "current_billing_cycle") or 0)
        if at_period_end and cycle < 1:
            raise GatewayError(
                ErrorCode.unsupported,
                f"subscription {subscription_id} has not billed yet (it is "
                f"{str(subscription.status).lower()}): Braintree can end a subscription only "
                "after a billing cycle. Cancel it now instead: nothing has been charged.",
                gateway=NAME,
            )
        try:
            changed = await (
                self._api.end_after_cycle(subscription_id, cycle)
                if at_period_end
                else self._api.cancel_subscription(subscription_id)
            )
        except GatewayError as exc:
            if exc.code not in _UNKNOWN:
                raise
            changed = await self._subscription_object(subscription_id)
            if not done(changed):
                raise
        return context.parse(changed)

    # --- webhooks ------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        return await verify_and_parse(self._api, self.settings.webhook_tolerance, body, headers)


# --- helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    owner: str
    currency: str
    frequency: int | None

    def parse(self, subscription: Any) -> Subscription:
        return parse_subscription(
            subscription,
            customer_id=self.owner,
            currency=self.currency,
            billing_frequency=self.frequency,
        )


async def _known(value: str) -> str:
    return value


def _ours(refunds: Iterable[Any], marker: str) -> Any | None:
    """The refund carrying our key in its order ID, if any."""
    return next((r for r in refunds if field(r, "order_id") == marker), None)


def _captured_as_asked(sale: Any, charge: Charge, amount: Money | None) -> bool:
    """Captured through the API for the amount asked (all of it when none was)."""
    if str(field(sale, "status")) not in CAPTURED:
        return False
    history = field(sale, "status_history")
    if not changed_through_api(history, "submitted_for_settlement", "transaction_source"):
        return False
    asked = amount.minor if amount is not None else None
    authorized = last_change(history, "authorized")
    if asked is None and authorized is not None:
        asked = money_from_braintree(authorized.amount, charge.amount.currency).minor
    return asked is None or asked == charge.amount_captured


def _voided_through_api(sale: Any) -> bool:
    return field(sale, "status") == "voided" and changed_through_api(
        field(sale, "status_history"), "voided", "transaction_source"
    )


def _canceled_through_api(subscription: Any) -> bool:
    return field(subscription, "status") == "Canceled" and changed_through_api(
        field(subscription, "status_history"), "Canceled", "subscription_source"
    )


def _ending(subscription: Any) -> bool:
    return ends_at_period_end(subscription)


def _part_of_unsettled(charge: Charge, status: str) -> GatewayError:
    """Why part of an unsettled payment cannot be refunded, and what can be done instead."""
    return GatewayError(
        ErrorCode.not_settled,
        f"charge {charge.id} has not settled at Braintree yet "
        f"({status.replace('_', ' ')}): Braintree refunds only settled payments, so "
        "part of it cannot be refunded now. Refund part of it once it has settled "
        f"(usually within a day), or refund all {charge.amount.format()} now, which "
        "voids the payment instead.",
        gateway=NAME,
        raw_code="91506",
    )


def _one_seat(quantity: int) -> None:
    """A Braintree subscription bills one of its plan: seats are an add-on's quantity."""
    if quantity != 1:
        raise GatewayError(
            ErrorCode.rejected,
            f"a Braintree subscription is one seat, not {quantity}: bill seats with an add-on",
            gateway=NAME,
        )
