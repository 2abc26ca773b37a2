"""The WooCommerce gateway: one store's REST API v3, through `WooCommerceAPI`.

- Customers are found by e-mail (`customers?email=`, any role) and so are guest orders
  (`orders?search=`, kept only where the billing e-mail is the one asked for). An account's
  orders are those of its user ID; a guest's, those with the e-mail and no account. An
  order number (`order #1234`, `1234`) finds the order with that number (a plugin may make
  numbers differ from IDs), else the order or subscription with that ID, else the order a
  refund with that ID belongs to (`GET /refunds?include=`, whose `parent_id` is the order:
  a store too old to have that endpoint finds no refund by its number).
- Refunds go through the order's payment plugin (`api_refund: true`). WooCommerce has no
  idempotency key: the request's key goes into the refund's meta data and reason, and the
  order's refunds are listed before anything is posted, so a retry finds the first
  refund instead of making a second. A refund WooCommerce refuses is explained after a
  fresh read: more than remains, or a payment method that cannot refund through the API
  (cash, bank transfer: the money goes back by hand, then "Refund manually" records it in
  WooCommerce), or the payment plugin's own refusal. The agent's reason goes into a
  private order note, never into what the customer sees.
- A refund paid back by hand (`refund … manual`) is recorded as “Refund manually” does:
  `api_refund: false`, the order refunded and no payment plugin asked, exactly once the same
  way (key in the meta data and reason, read back before posting).
- Subscriptions need the WooCommerce Subscriptions extension: cancelled now
  (`cancelled`) or at the end of the paid period (`pending-cancel`); without it the store
  answers `rest_no_route` and cancelling is unsupported, saying why.
- The billing index is fed page by page from orders, subscriptions and accounts
  (`sync.py`).
- Capture and void do not exist in WooCommerce's REST API: the payment plugin captures
  or releases when the order's status changes in WooCommerce.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

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
from bot.gateways.checks import check_refund
from bot.gateways.events import GatewayEvent
from bot.gateways.readings import MAX_MATCHES
from bot.gateways.termination import PaidPeriod, nothing_paid
from bot.gateways.woocommerce import sync
from bot.gateways.woocommerce.client import Reply, WooCommerceAPI, error_of
from bot.gateways.woocommerce.mapping import (
    HIDDEN_STATUSES,
    NAME,
    REQUEST_META_KEY,
    Json,
    amount_text,
    billing_email,
    customer_from_orders,
    customer_ref,
    is_ours,
    is_paid,
    order_id_of,
    order_refunds,
    owner_of,
    parse_customer,
    parse_order,
    parse_refund,
    parse_subscription,
    refund_marker,
    refund_reason,
    user_id_of,
    wc_time,
)
from bot.gateways.woocommerce.webhooks import verify_and_parse
from bot.models import Address, Charge, Customer, GatewayProfile, Refund, Subscription
from bot.money import Money, MoneyError
from bot.settings import WooCommerceSettings

log = logging.getLogger(__name__)

_AT_CHECKOUT = (
    "WooCommerce Subscriptions starts a subscription when the customer checks out a "
    "subscription product: send them the product's page"
)
NO_SUBSCRIPTIONS = (
    "the store has no WooCommerce Subscriptions extension (its REST API answers rest_no_route): "
    "its orders are one-off payments"
)
NO_CAPTURE = (
    "WooCommerce's REST API has no capture: the order's payment plugin captures when the "
    "order moves to Processing or Completed in WooCommerce"
)
NO_VOID = (
    "WooCommerce's REST API has no void: cancelling the order in WooCommerce makes its "
    "payment plugin release the authorization"
)
MAX_ACCOUNTS = 20  # accounts sharing one e-mail (WordPress allows one; plugins more)
# Order numbers as plugins write them (`1042`, `WC-1042`, `2026-0042`): worth a search.
_NUMBER = re.compile(r"[A-Za-z]{0,6}[-#]?\d[\d-]{0,20}")


_NO_DISPUTES = (
    "WooCommerce has no dispute API: answer the chargeback where the payment plugin's "
    "provider shows it (Stripe, PayPal, ...)"
)


class WooCommerceGateway(Gateway):
    """One WooCommerce store: customers, orders, refunds, subscriptions and webhooks.

    `backoff` is the first retry's mean pause in seconds (doubling after);
    `max_charges` caps how many orders a lookup fetches per customer, newest first.
    """

    name = NAME
    capabilities = frozenset(
        {
            Capability.lookup,
            Capability.refund,
            Capability.partial_refund,
            Capability.manual_refund,
            Capability.cancel_subscription,
            Capability.cancel_with_refund,
            Capability.pause_subscription,
            Capability.webhooks,
            Capability.customer_details,
            Capability.sync,
        }
    )
    limits: ClassVar[Mapping[Capability, str]] = {
        Capability.refund: "through the order's payment plugin; cash and bank transfers by "
        "hand, then recorded with `refund … manual`",
        Capability.manual_refund: "as “Refund manually” does (`api_refund: false`): no money moves",
        Capability.cancel_subscription: "with the WooCommerce Subscriptions extension",
        Capability.pause_subscription: "on-hold and back, with WooCommerce Subscriptions",
        Capability.cancel_with_refund: "with the WooCommerce Subscriptions extension",
        Capability.customer_details: "registered customers: a guest's details are on the order",
        Capability.lookup: "names and parts of e-mails find accounts, not guests; a refund ID "
        "needs a store whose REST API lists `/refunds`",
        Capability.sync: "orders with their refunds, guests and subscriptions by change; "
        "accounts as they are added (WooCommerce lists no changed accounts)",
    }
    missing: ClassVar[Mapping[Capability, str]] = {
        Capability.charge_saved_card: "WooCommerce's REST API cannot charge a saved card: its "
        "payment plugins do, at checkout",
        Capability.payment_link: "WooCommerce pays at checkout: create the order in the shop "
        "and send its payment page",
        Capability.coupon: "WooCommerce coupons are entered at checkout: send the customer "
        "the code for their next order",
        Capability.accept_dispute: _NO_DISPUTES,
        Capability.dispute_evidence: _NO_DISPUTES,
        Capability.create_subscription: _AT_CHECKOUT,
        Capability.change_plan: "WooCommerce Subscriptions switches plans at checkout (the "
        "customer's Upgrade or Downgrade button in My Account)",
    }

    def __init__(
        self, settings: WooCommerceSettings, *, backoff: float = 0.5, max_charges: int = 200
    ) -> None:
        self._api = WooCommerceAPI(settings, backoff=backoff)
        self.settings = settings
        self.max_charges = max_charges

    async def close(self) -> None:
        await self._api.close()

    def dashboard_url(self, object_id: str) -> str | None:
        """An order's or subscription's edit page in WP admin, or a customer's user page."""
        store = self._api.store_url
        user = user_id_of(object_id)
        if user is not None:
            return f"{store}/wp-admin/user-edit.php?user_id={user}"
        post = order_id_of(object_id)
        # post.php also opens HPOS orders: WooCommerce redirects it to its own order page.
        return f"{store}/wp-admin/post.php?post={post}&action=edit" if post is not None else None

    # --- single reads --------------------------------------------------------------------

    def _post_id(self, object_id: str, what: str) -> int:
        found = order_id_of(object_id)
        if found is None:
            raise GatewayError(
                ErrorCode.not_found, f"WooCommerce has no {what} {object_id}", gateway=NAME
            )
        return found

    async def _order(self, order_id: int) -> Json:
        return (await self._api.get(f"orders/{order_id}", what=f"order {order_id}")).body

    async def _optional(self, path: str, what: str) -> Json | None:
        try:
            return (await self._api.get(path, what=what)).body
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found and exc.raw_code != "rest_no_route":
                return None
            raise

    async def _subscription(self, subscription_id: int) -> Json:
        try:
            reply = await self._api.get(
                f"subscriptions/{subscription_id}", what=f"subscription {subscription_id}"
            )
        except GatewayError as exc:
            if exc.raw_code == "rest_no_route":
                raise Unsupported(NAME, Capability.cancel_subscription, NO_SUBSCRIPTIONS) from None
            raise
        return reply.body

    async def _subscriptions(self, params: Mapping[str, object], what: str) -> list[Json]:
        """A list of subscriptions; none where the store has no Subscriptions extension."""
        try:
            return await self._api.pages("subscriptions", params, what=what, limit=self.max_charges)
        except GatewayError as exc:
            if exc.raw_code == "rest_no_route":
                return []
            raise

    async def sync_page(
        self, kind: str, cursor: str | None, *, since: datetime | None, limit: int
    ) -> SyncPage:
        return await sync.page(self._api, kind, cursor, since=since, limit=limit)

    async def get_charge(self, charge_id: str) -> Charge:
        return _charge(await self._order(self._post_id(charge_id, "order")))

    async def get_subscription(self, subscription_id: str) -> Subscription:
        sub = await self._subscription(self._post_id(subscription_id, "subscription"))
        return parse_subscription(sub)

    # --- lookup --------------------------------------------------------------------------

    lookup_kinds = frozenset({"email", "id", "name", "partial_email"})

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        value = query.value.strip()
        if query.kind in ("name", "partial_email"):  # accounts only: guests have no user
            found = await self._api.pages(
                "customers", {"search": value, "role": "all"},
                what=f"customers matching {value}", limit=MAX_MATCHES + 1,
            )  # fmt: skip
            return [GatewayProfile(gateway=NAME, customer=parse_customer(c)) for c in found]
        if query.kind == "email" or "@" in value:
            return await self._by_email(value.lower())
        user = user_id_of(value)
        if user is not None:
            profile = await self._account(user, None)
            return [profile] if profile is not None else []
        if order_id_of(value) is None and not _NUMBER.fullmatch(value):
            return []  # not a WooCommerce ID or order number: no request
        owners = await self._owners_of_number(value)
        profiles = await asyncio.gather(*(self._owner_profile(o) for o in owners))
        return [p for p in profiles if p is not None]

    async def _by_email(self, email: str) -> list[GatewayProfile]:
        if " " in email or email.count("@") != 1 or "." not in email.split("@")[1]:
            return []  # WooCommerce refuses what is not an address
        accounts, orders = await asyncio.gather(
            self._api.pages(
                "customers", {"email": email, "role": "all"}, what=f"customers with e-mail {email}",
                limit=MAX_ACCOUNTS,
            ),
            self._orders_of_email(email),
        )  # fmt: skip
        known = {int(c["id"]): c for c in accounts}
        others = sorted(
            {int(o["customer_id"]) for o in orders if o.get("customer_id")} - set(known)
        )
        guests = [o for o in orders if not o.get("customer_id")]
        found = await asyncio.gather(
            *(self._account(user, known.get(user)) for user in [*known, *others][:MAX_ACCOUNTS])
        )
        profiles = [p for p in found if p is not None]
        if guests:
            profiles.append(self._profile(customer_from_orders(email, guests), guests, []))
        return profiles

    async def _orders_of_email(self, email: str) -> list[Json]:
        """Orders whose billing e-mail is this one (search matches parts of addresses too)."""
        found = await self._api.pages(
            "orders", {"search": email}, what=f"orders of {email}", limit=self.max_charges
        )
        return [
            o for o in found if billing_email(o) == email and o.get("status") not in HIDDEN_STATUSES
        ]

    async def _account(self, user: int, customer: Json | None) -> GatewayProfile | None:
        """A registered customer's profile: their account, orders and subscriptions."""
        fetched, orders, subscriptions = await asyncio.gather(
            self._customer(user, customer),
            self._api.pages("orders", {"customer": user}, what=f"orders of customer {user}", limit=self.max_charges),
            self._subscriptions({"customer": user}, f"subscriptions of customer {user}"),
        )  # fmt: skip
        orders = [o for o in orders if o.get("status") not in HIDDEN_STATUSES]
        if fetched is None and not orders and not subscriptions:
            return None
        who = (
            parse_customer(fetched) if fetched else customer_from_orders(customer_ref(user), orders)
        )
        return self._profile(who, orders, subscriptions)

    async def _customer(self, user: int, known: Json | None) -> Json | None:
        """The account of a WordPress user, unless the e-mail search already gave it."""
        if known is not None:
            return known
        return await self._optional(f"customers/{user}", f"customer {user}")

    async def _owners_of_number(self, number: str) -> list[str]:
        """Who owns the order numbered `number` (else with that ID), or that subscription."""
        by_id = None
        if order_id_of(number) is not None:
            by_id = await self._optional(f"orders/{number}", f"order {number}")
        wanted = number.lower()
        if by_id is not None and str(by_id.get("number")).lower() == wanted:
            owners = [owner_of(by_id)]
        else:
            matches = await self._api.pages(
                "orders", {"search": number}, what=f"orders numbered {number}", limit=100
            )
            owners = [owner_of(o) for o in matches if str(o.get("number")).lower() == wanted]
            if not owners and by_id is not None:
                owners = [owner_of(by_id)]
            if not owners and by_id is None and order_id_of(number) is not None:
                try:
                    sub = await self._optional(f"subscriptions/{number}", f"subscription {number}")
                except GatewayError as exc:
                    if exc.raw_code != "rest_no_route":
                        raise
                    sub = None
                if sub is not None:
                    owners = [customer_ref(int(sub.get("customer_id") or 0))]
        if not owners and by_id is None and order_id_of(number) is not None:
            owners = await self._owners_of_refund(int(number))
        return list(dict.fromkeys(o for o in owners if o))

    async def _owners_of_refund(self, refund_id: int) -> list[str]:
        """Who owns the order a refund ID belongs to: WooCommerce's `GET /refunds` names
        each refund's order (`parent_id`); a store from before that endpoint cannot say."""
        try:
            found = await self._api.get(
                "refunds", {"include": refund_id}, what=f"refund {refund_id}"
            )
        except GatewayError as exc:
            if exc.raw_code == "rest_no_route":
                return []  # older WooCommerce: a bare refund number is not searchable
            raise
        parents = {
            int(r["parent_id"])
            for r in found.body or []
            if isinstance(r, dict) and str(r.get("id")) == str(refund_id) and r.get("parent_id")
        }
        orders = [await self._optional(f"orders/{p}", f"order {p}") for p in sorted(parents)]
        return [owner for o in orders if o is not None and (owner := owner_of(o))]

    async def _owner_profile(self, owner: str) -> GatewayProfile | None:
        user = user_id_of(owner)
        if user is not None:
            return await self._account(user, None)
        guests = [o for o in await self._orders_of_email(owner) if not o.get("customer_id")]
        return self._profile(customer_from_orders(owner, guests), guests, []) if guests else None

    def _profile(
        self, customer: Customer, orders: list[Json], subscriptions: list[Json]
    ) -> GatewayProfile:
        charges: list[Charge] = []
        refunds: list[Refund] = []
        for order in orders[: self.max_charges]:
            try:
                charges.append(parse_order(order))
                refunds.extend(order_refunds(order))
            except MoneyError as exc:
                # An order in a currency outside ISO 4217 (a plugin's BTC): shown nowhere,
                # rather than losing the whole card.
                log.warning("woocommerce order %s left out: %s", order.get("id"), exc)
        subs: list[Subscription] = []
        for sub in subscriptions:
            try:
                subs.append(parse_subscription(sub))
            except (MoneyError, GatewayError) as exc:
                log.warning("woocommerce subscription %s left out: %s", sub.get("id"), exc)
        return GatewayProfile(
            gateway=NAME,
            customer=customer,
            charges=tuple(charges),
            refunds=tuple(refunds),
            subscriptions=tuple(subs),
        )

    # --- refunds -------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        return await self._refund(charge_id, amount, reason, idempotency_key, api_refund=True)

    async def record_manual_refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        """WooCommerce's “Refund manually”: the order is refunded, its payment plugin is never
        asked, whatever it could do (a shop may have paid back by hand an order paid by card)."""
        return await self._refund(charge_id, amount, reason, idempotency_key, api_refund=False)

    async def _refund(
        self, charge_id: str, amount: Money, reason: str, idempotency_key: str, *, api_refund: bool
    ) -> Refund:
        order_id = self._post_id(charge_id, "order")
        order = await self._order(order_id)
        currency = str(order.get("currency") or "")
        earlier = await self._refund_by_key(order_id, currency, idempotency_key)
        by_hand = not api_refund
        if earlier is not None:
            await self._note_once(order_id, earlier, reason, idempotency_key, by_hand=by_hand)
            return earlier
        charge = _charge(order)
        if not is_paid(order):
            raise GatewayError(
                ErrorCode.not_settled,
                f"order {order_id} is {order.get('status')} and not paid: there is nothing to "
                "refund (cancel the order in WooCommerce instead)",
                gateway=NAME,
                raw_code=str(order.get("status")),
            )
        check_refund(charge, amount)
        reply = await self._api.write(
            "POST",
            f"orders/{order_id}/refunds",
            {
                "amount": amount_text(amount),
                "reason": refund_reason(idempotency_key),
                "api_refund": api_refund,
                "meta_data": [{"key": REQUEST_META_KEY, "value": idempotency_key}],
            },
            verb="refund",
            what=f"order {order_id}",
        )
        if reply.status >= 300:
            raise await self._refund_refused(reply, order, amount, by_hand=by_hand)
        refund = parse_refund(reply.body, str(order_id), currency)
        await self._note_once(order_id, refund, reason, idempotency_key, by_hand=by_hand)
        return refund

    async def _refund_by_key(self, order_id: int, currency: str, key: str) -> Refund | None:
        """The refund an earlier run with this key made, if WooCommerce has it."""
        refunds = await self._api.pages(
            f"orders/{order_id}/refunds", what=f"refunds of order {order_id}", limit=1000
        )
        for refund in refunds:
            if is_ours(refund, key):
                return parse_refund(refund, str(order_id), currency)
        return None

    async def _refund_refused(
        self, reply: Reply, order: Json, amount: Money, *, by_hand: bool = False
    ) -> GatewayError:
        """Why WooCommerce did not refund, from a fresh read (its words are translated)."""
        raw_code, raw_message = reply.error()
        order_id = order["id"]
        if raw_code != "woocommerce_rest_cannot_create_order_refund":
            return error_of(reply, "refund", f"order {order_id}")
        kept = {"gateway": NAME, "raw_code": raw_code, "raw_message": raw_message}
        now = _charge(await self._order(int(order_id)))
        if amount.minor > now.refundable.minor:
            return GatewayError(
                ErrorCode.amount_too_large,
                f"cannot refund {amount.format()}: only {now.refundable.format()} of order "
                f"{order_id} remains refundable",
                **kept,
            )
        if by_hand:  # no payment plugin was asked: WooCommerce's own words
            return error_of(reply, "refund", f"order {order_id}")
        method = str(order.get("payment_method") or "")
        title = str(order.get("payment_method_title") or method or "no payment method")
        supports = await self._refund_support(method)
        if supports is False:
            return _cannot_refund(order, amount, **kept)
        if supports is None and raw_message:
            # The store would not say what its payment method supports: WooCommerce's words.
            return GatewayError(
                ErrorCode.rejected,
                f"WooCommerce did not refund order {order_id}: {raw_message} Nothing was refunded.",
                **kept,
            )
        return GatewayError(
            ErrorCode.rejected,
            f"{title} refused to refund order {order_id}: {raw_message or 'no reason given'}. "
            "Nothing was refunded.",
            **kept,
        )

    async def precheck_refund(self, charge: Charge, amount: Money) -> None:
        """An order whose payment method cannot refund through WooCommerce is refused before
        anyone is asked to approve it."""
        order = await self._order(int(charge.id))
        if await self._refund_support(str(order.get("payment_method") or "")) is False:
            raise _cannot_refund(order, amount)

    async def _refund_support(self, method: str) -> bool | None:
        """Whether the order's payment method refunds through the API; None if unknown."""
        if not method:
            return False
        try:
            found = await self._optional(f"payment_gateways/{method}", f"payment method {method}")
        except GatewayError:
            return None  # a key whose user may not read payment settings
        if found is None:
            return False  # the plugin is gone
        supports = found.get("method_supports")
        return "refunds" in supports if isinstance(supports, list) else None

    async def _note_once(
        self, order_id: int, refund: Refund, reason: str, key: str, *, by_hand: bool = False
    ) -> None:
        """A private order note saying who refunded (or recorded a refund paid back by hand)
        and why; once per request, best effort."""
        tag = f"(ref {refund_marker(key)})"
        try:
            notes = await self._api.get(
                f"orders/{order_id}/notes", {"type": "internal"}, what=f"notes of order {order_id}"
            )
            if any(tag in str(n.get("note") or "") for n in notes.body or []):
                return
            amount = refund.amount.format()
            done = f"Recorded {amount} as paid back by hand," if by_hand else f"Refunded {amount}"
            text = f"{done} through ChargeDesk {tag}: {html.escape(' '.join(reason.split()))}"
            answer = await self._api.write(
                "POST",
                f"orders/{order_id}/notes",
                {"note": text, "customer_note": False},
                verb="note",
                what=f"order {order_id}",
            )
            if answer.status >= 300:
                raise error_of(answer, "note", f"order {order_id}")
        except GatewayError as exc:
            # The money moved; a missing note must not make anyone refund again.
            log.warning("refund %s of order %s has no note: %s", refund.id, order_id, exc.message)

    # --- what WooCommerce's API cannot do -----------------------------------------------

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        raise Unsupported(NAME, Capability.capture, NO_CAPTURE)

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        raise Unsupported(NAME, Capability.void, NO_VOID)

    # --- subscriptions -------------------------------------------------------------------

    async def subscription_payment(self, subscription_id: str) -> PaidPeriod:
        """The newest paid order among the subscription's related orders (parent, renewals),
        for the period from its last payment to its next."""
        sub_id = self._post_id(subscription_id, "subscription")
        current = await self._subscription(sub_id)
        related = await self._api.get(
            f"subscriptions/{sub_id}/orders", what=f"orders of subscription {sub_id}"
        )
        paid = sorted(
            (o for o in related.body or [] if is_paid(o)),
            key=lambda o: str(o.get("date_paid_gmt") or o.get("date_created_gmt") or ""),
            reverse=True,
        )
        start = wc_time(current.get("last_payment_date_gmt"))
        end = wc_time(current.get("next_payment_date_gmt"))
        if not paid or start is None or end is None or end <= start:
            raise nothing_paid(NAME, str(sub_id), "no paid order for a period still running")
        return PaidPeriod(await self.get_charge(str(paid[0]["id"])), start, end)

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        sub_id = self._post_id(subscription_id, "subscription")
        current = await self._subscription(sub_id)
        status = str(current.get("status"))
        target = "pending-cancel" if at_period_end else "cancelled"
        if status == target:
            return parse_subscription(current)  # done already (by this request, or anyone)
        if at_period_end and status != "active":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"subscription {sub_id} is {status}: only an active subscription can end at "
                "the end of its paid period",
                gateway=NAME,
                raw_code=status,
            )
        if status in ("cancelled", "expired", "switched", "trash"):
            raise GatewayError(
                ErrorCode.invalid_state,
                f"subscription {sub_id} is {status} already",
                gateway=NAME,
                raw_code=status,
            )
        what = f"subscription {sub_id}"
        try:
            # `transition_status` runs WooCommerce Subscriptions' own status change (end
            # dates, scheduled payments, e-mails); a plain `status` would only relabel it.
            reply = await self._api.write(
                "PUT",
                f"subscriptions/{sub_id}",
                {"transition_status": target},
                verb="cancel",
                what=what,
            )
        except GatewayError as exc:
            # The outcome is unknown: what the store holds now says.
            after = await self._subscription(sub_id)
            if after.get("status") == target:
                return parse_subscription(after)
            raise exc from None
        if reply.status < 300:
            return parse_subscription(reply.body)
        after = await self._subscription(sub_id)
        if after.get("status") == target:
            return parse_subscription(after)
        raw_code, raw_message = reply.error()
        if reply.status >= 500:
            raise GatewayError(
                ErrorCode.rejected,
                f"WooCommerce Subscriptions would not move subscription {sub_id} from {status} "
                f"to {target} (its payment method may not allow it): it is still "
                f"{after.get('status')}",
                gateway=NAME,
                raw_code=raw_code or str(reply.status),
                raw_message=raw_message,
            )
        raise error_of(reply, "cancel", what)

    async def set_paused(
        self, subscription_id: str, paused: bool, *, idempotency_key: str
    ) -> Subscription:
        """active <-> on-hold: the status is read first and after any doubt (already so:
        the same result), as no request here carries a key."""
        target, verb = ("on-hold", "suspend") if paused else ("active", "reactivate")
        sub_id = self._post_id(subscription_id, "subscription")
        current = await self._subscription(sub_id)
        status = str(current.get("status"))
        if status == target:
            return parse_subscription(current)
        if status not in ("active", "on-hold"):
            raise GatewayError(
                ErrorCode.invalid_state, f"subscription {sub_id} is {status}: it cannot {verb}",
                gateway=NAME, raw_code=status,
            )  # fmt: skip
        what = f"subscription {sub_id}"
        try:
            reply = await self._api.write(
                "PUT", f"subscriptions/{sub_id}", {"transition_status": target},
                verb=verb, what=what,
            )  # fmt: skip
        except GatewayError:
            after = await self._subscription(sub_id)
            if after.get("status") == target:
                return parse_subscription(after)
            raise
        if reply.status < 300:
            return parse_subscription(reply.body)
        after = await self._subscription(sub_id)
        if after.get("status") == target:
            return parse_subscription(after)
        raise error_of(reply, verb, what)

    # --- customer details ----------------------------------------------------------------

    async def precheck_customer_details(self, customer_id: str) -> None:
        """A guest (an e-mail, no account) has no details of their own to change: refused
        before anyone is asked to approve it."""
        if user_id_of(customer_id) is None:
            raise GatewayError(
                ErrorCode.invalid_state,
                f"{customer_id} bought as a guest, so their name and address are on each "
                "order, not on an account: change them on the order in WooCommerce "
                "(Orders > the order > Billing > edit)",
                gateway=NAME,
                raw_code="guest",
            )

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        address: Address | None = None,
        idempotency_key: str,
    ) -> Customer:
        """`PUT /customers/{id}`: the account's name and billing address. Putting the same
        values twice changes nothing, so a retry needs no key of its own."""
        await self.precheck_customer_details(customer_id)  # a guest: refused again here
        user = user_id_of(customer_id)
        assert user is not None
        body: Json = {}
        billing: Json = {}
        if name is not None:
            first, last = split_name(name)
            body |= {"first_name": first, "last_name": last}
            billing |= {"first_name": first, "last_name": last}
        if address is not None:
            billing |= {
                "address_1": address.line1 or "", "address_2": address.line2 or "",
                "city": address.city or "", "state": address.state or "",
                "postcode": address.postal_code or "", "country": address.country or "",
            }  # fmt: skip
        if billing:
            body["billing"] = billing
        what = f"customer {user}"
        reply = await self._api.write("PUT", f"customers/{user}", body, verb="update", what=what)
        if reply.status >= 300:
            raise error_of(reply, "update", what)
        return parse_customer(reply.body)

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        secret = self.settings.webhook_secret
        return verify_and_parse(
            body,
            headers,
            secret.get_secret_value() if secret is not None else None,
            self.settings.webhook_tolerance,
        )


def _charge(order: Json) -> Charge:
    """An order as a charge; an order ChargeDesk cannot hold in money terms is refused."""
    try:
        return parse_order(order)
    except MoneyError as exc:
        raise GatewayError(
            ErrorCode.rejected,
            f"order {order.get('id')} cannot be handled here: {exc}",
            gateway=NAME,
            raw_code="currency",
        ) from None


def _cannot_refund(order: Json, amount: Money, **kept: str | None) -> GatewayError:
    """The order's payment method cannot refund through WooCommerce: what to do instead, as
    the command that records the refund once the money went back by hand."""
    method = str(order.get("payment_method") or "")
    title = str(order.get("payment_method_title") or method or "no payment method")
    return GatewayError(
        ErrorCode.unsupported,
        f"order {order['id']} was paid with {title}, which cannot refund through "
        "WooCommerce: nothing was refunded. Pay the customer back another way, then record "
        f"it: `refund {NAME}:{order['id']} {amount_text(amount)} manual reason: …` (or "
        "“Refund manually” on the order in WooCommerce).",
        **({"gateway": NAME} | kept),
    )
