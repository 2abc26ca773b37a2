"""The PayPal gateway: reads and actions through `PayPalAPI`, objects through `mapping`.

- PayPal has no customer search. A payer is found through Transaction Search
  (`/v1/reporting/transactions`, at most 31 days per request, so the lookback
  is cut into windows searched concurrently) by the e-mail on each row; the
  customer ID is the payer ID. Rows name the payer's captures, authorizations
  and (reference type SUB) subscriptions; invoices are searched by recipient
  e-mail. New transactions can take up to three hours to reach the search;
  objects looked up by ID are always included.
- Refunds, captures and voids send the idempotency key as `PayPal-Request-Id`.
  When a fresh read says the action can no longer happen (already refunded,
  captured, voided), the request is sent once more with that ID: PayPal
  answers a repeat with the first result and refuses anything else, so a
  retried action returns what the first did and a new one is refused with our
  reasons.
- Cancelling a subscription has no request ID. The key's reference goes into
  the cancel reason, which PayPal keeps as `status_change_note`: a subscription
  found cancelled with it was cancelled by this key. PayPal cancels at once
  and has no cancel-at-period-end, so that is refused as unsupported.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator, Mapping
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
)
from bot.gateways.calls import optional
from bot.gateways.checks import check_capture, check_refund, require_status
from bot.gateways.events import EventKind, GatewayEvent
from bot.gateways.paypal import disputes, orders, sync
from bot.gateways.paypal.client import PayPalAPI, request_id
from bot.gateways.paypal.mapping import (
    NAME,
    UNKNOWN_PAYER,
    Found,
    Json,
    Payer,
    authorization_captures,
    full_name,
    money_to_paypal,
    order_payer,
    order_payments,
    order_refunds,
    parse_authorization,
    parse_capture,
    parse_invoice,
    parse_refund,
    parse_row_charge,
    parse_subscription,
    payers_from_rows,
    paypal_time,
    recipient_email,
    recipient_name,
    refund_json_from_row,
    related_id,
    row_info,
    row_order,
    row_payer,
    row_time,
)
from bot.gateways.paypal.webhooks import verify_and_parse
from bot.gateways.termination import PaidPeriod, nothing_paid
from bot.models import (
    Charge,
    ChargeStatus,
    Customer,
    Dispute,
    DisputeStatus,
    GatewayProfile,
    Invoice,
    PayLink,
    PayLinkStatus,
    Refund,
    Subscription,
)
from bot.money import Money
from bot.settings import PayPalSettings

SEARCH_WINDOW = sync.SEARCH_WINDOW
SEARCH_HISTORY = sync.SEARCH_HISTORY
SEARCH_PAGE_SIZE = 500
INVOICE_PAGE_SIZE = 100
ACTIVITY_PAGE = "https://www.paypal.com/activity/payment/"
SANDBOX_ACTIVITY_PAGE = "https://www.sandbox.paypal.com/activity/payment/"
# Captures, authorizations, sales and refunds share PayPal's 17-character transaction IDs.
_TRANSACTION_ID = re.compile(r"[0-9A-Z]{17}")
_PAYER_ID = re.compile(r"[0-9A-Z]{13}")  # a PayPal account (payer) ID


@dataclass
class _Resolved:
    """A capture or authorization ID, read fresh, with its order and our view of it."""

    kind: str  # "capture" or "authorization"
    body: Json
    order: Json | None
    charge: Charge
    capture_ids: tuple[str, ...] = ()  # an authorization's captures


class PayPalGateway(Gateway):
    """PayPal REST: payments, subscriptions, invoices and webhooks of one REST app.

    `backoff` is the first retry's mean pause in seconds (doubling after);
    `max_charges` caps how many of a payer's payments a lookup fetches, newest first.
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
            Capability.cancel_with_refund,
            Capability.invoices,
            Capability.send_invoice,
            Capability.webhooks,
            Capability.pause_subscription,
            Capability.disputes,
            Capability.accept_dispute,
            Capability.dispute_evidence,
            Capability.payment_link,
            Capability.sync,
        }
    )
    lookup_kinds = frozenset({"email", "id", "invoice_number"})
    limits: ClassVar[Mapping[Capability, str]] = {
        # PayPal has no customer search: Transaction Search, which lags new payments.
        Capability.lookup: "by e-mail, ID and invoice number, no name search; the e-mail "
        "search lags new payments by up to 3 h",
        Capability.cancel_subscription: "now only: no cancel at period end",
        Capability.disputes: "on payments of the last 180 days (the 20 newest on a card)",
        Capability.dispute_evidence: "once it waits for the seller (not while an inquiry); "
        "PDFs and notes, no tracking numbers",
        # PayPal's approve page lasts 3 hours; the reminders carry a new order.
        Capability.sync: "payers, charges and refunds from Transaction Search (3 years back, "
        "3 h behind), invoices, disputes of 180 days; no subscriptions: PayPal lists none",
        Capability.payment_link: "a PayPal checkout the buyer approves within 3 h (each "
        "reminder carries a new one); the bot captures it on approval",
    }
    missing: ClassVar[Mapping[Capability, str]] = {
        Capability.charge_saved_card: "charging a PayPal buyer without them needs a vaulted "
        "payment token (reference transactions), which this gateway does not keep",
        Capability.customer_details: "PayPal payer details belong to the payer: they change "
        "them in their PayPal account",
        Capability.tax_id: "PayPal payer details belong to the payer: PayPal keeps no tax ID "
        "for them",
        Capability.coupon: "PayPal subscriptions take no coupons: move the subscriber to a "
        "cheaper plan, or refund part of a payment",
        # Both need the buyer: PayPal sends them to approve the new subscription or price.
        Capability.create_subscription: "a PayPal subscription starts when the buyer approves "
        "it on PayPal: send them your subscribe button or link",
        Capability.change_plan: "PayPal asks the buyer to approve a new plan or price: they "
        "change it from their PayPal account or your site's subscribe button",
    }

    def __init__(
        self,
        settings: PayPalSettings,
        *,
        backoff: float = 0.5,
        max_charges: int = 200,
    ) -> None:
        self._api = PayPalAPI(settings, backoff=backoff)
        self.settings = settings
        self.max_charges = max_charges

    async def close(self) -> None:
        await self._api.close()

    def dashboard_url(self, object_id: str) -> str | None:
        """A capture's (or any transaction's) page in PayPal's activity, on the sandbox site
        for the sandbox environment; None for subscriptions, invoices and orders."""
        if not _TRANSACTION_ID.fullmatch(object_id):
            return None
        live = self.settings.environment == "live"
        return (ACTIVITY_PAGE if live else SANDBOX_ACTIVITY_PAGE) + object_id

    # --- single reads --------------------------------------------------------------------

    async def _capture_json(self, capture_id: str) -> Json:
        reply = await self._api.sdk(
            self._api.sdk_client.payments.get_captured_payment,
            {"capture_id": capture_id},
            verb="read",
            what=f"capture {capture_id}",
        )
        return reply.body

    async def _authorization_json(self, authorization_id: str) -> Json:
        reply = await self._api.sdk(
            self._api.sdk_client.payments.get_authorized_payment,
            {"authorization_id": authorization_id},
            verb="read",
            what=f"authorization {authorization_id}",
        )
        return reply.body

    async def _order_json(self, order_id: str) -> Json:
        reply = await self._api.sdk(
            self._api.sdk_client.orders.get_order,
            {"id": order_id},
            verb="read",
            what=f"order {order_id}",
        )
        return reply.body

    async def _subscription_json(self, subscription_id: str) -> Json:
        reply = await self._api.sdk(
            self._api.sdk_client.subscriptions.get_subscription,
            {"id": subscription_id, "fields": "plan"},
            verb="read",
            what=f"subscription {subscription_id}",
        )
        return reply.body

    async def _invoice_json(self, invoice_id: str) -> Json:
        reply = await self._api.rest(
            "GET",
            f"/v2/invoicing/invoices/{invoice_id}",
            verb="read",
            what=f"invoice {invoice_id}",
        )
        return reply.body

    async def get_charge(self, charge_id: str) -> Charge:
        return (await self._resolve(charge_id)).charge

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return parse_subscription(await self._subscription_json(subscription_id))

    async def _resolve(self, charge_id: str) -> _Resolved:
        """Read a capture or authorization ID afresh (PayPal's IDs do not say which)."""
        capture, authorization = await asyncio.gather(
            optional(self._capture_json(charge_id)),
            optional(self._authorization_json(charge_id)),
        )
        if capture is not None:
            order = await self._order_of(capture)
            refunds = order_refunds(order).get(capture["id"], [])
            if order is None and capture.get("status") == "PARTIALLY_REFUNDED":
                refunds = await self._refunds_from_search(capture)
            return _Resolved(
                "capture",
                capture,
                order,
                parse_capture(capture, refunds, order_payer(order).id),
            )
        if authorization is not None:
            order = await self._order_of(authorization)
            captures = authorization_captures(order, authorization["id"])
            charge = parse_authorization(
                authorization, captures, order_refunds(order), order_payer(order).id
            )
            return _Resolved(
                "authorization",
                authorization,
                order,
                charge,
                tuple(c["id"] for c in captures),
            )
        raise GatewayError(
            ErrorCode.not_found, f"PayPal has no capture or authorization {charge_id}", gateway=NAME
        )

    async def _order_of(self, payment: Json) -> Json | None:
        order_id = related_id(payment, "order_id")
        return await optional(self._order_json(order_id)) if order_id else None

    async def _refunds_from_search(self, capture: Json) -> list[Json]:
        """Refunds of a capture made outside an order, as transaction rows since it."""
        oldest = _now() - SEARCH_HISTORY  # older than that, the search answers 400
        start = max(paypal_time(capture.get("create_time")) or oldest, oldest)
        rows = await self._rows(start, _now())
        return [
            refund_json_from_row(row)
            for row in rows
            if row_info(row).get("paypal_reference_id") == capture["id"]
            and str(row_info(row).get("transaction_event_code", "")).startswith("T11")
        ]

    # --- transaction search --------------------------------------------------------------

    async def _rows(
        self, start: datetime, end: datetime, *, transaction_id: str | None = None
    ) -> list[Json]:
        """Every search row from start to end, 31-day windows fetched concurrently."""
        pages = await asyncio.gather(
            *(self._window(s, e, transaction_id) for s, e in _windows(start, end))
        )
        seen: set[tuple[Any, ...]] = set()
        rows = []
        for row in (row for page in pages for row in page):
            info = row_info(row)
            key = (
                info.get("transaction_id"),
                info.get("transaction_event_code"),
                info.get("transaction_initiation_date"),
            )
            if key not in seen:  # a row exactly on a window edge comes back twice
                seen.add(key)
                rows.append(row)
        return rows

    async def _window(
        self, start: datetime, end: datetime, transaction_id: str | None
    ) -> list[Json]:
        rows: list[Json] = []
        page = 1
        while True:
            body = await sync.search_page(
                self._api, start, end, page=page, page_size=SEARCH_PAGE_SIZE,
                transaction_id=transaction_id,
            )  # fmt: skip
            rows.extend(body.get("transaction_details") or [])
            if page >= int(body.get("total_pages") or 1):
                return rows
            page += 1

    async def _find(self, email: str) -> list[Found]:
        """Every payer using this e-mail, from the lookback's rows, and its invoices."""
        end = _now()
        rows, invoices = await asyncio.gather(
            self._rows(end - timedelta(days=self.settings.lookback_days), end),
            self._invoices_for(email),
        )
        found = payers_from_rows(rows, email)
        if invoices:
            # Invoices are addressed to an e-mail, not a payer: the latest payer gets them.
            owner = found[0] if found else Found(Payer(None, email, recipient_name(invoices[0])))
            owner.invoices.update({i["id"]: i for i in invoices})
            if not found:
                found.append(owner)
        return found

    async def _invoices_for(self, email: str) -> list[Json]:
        return await self._search_invoices({"recipient_email": email}, f"invoices for {email}")

    async def _search_invoices(self, search: Json, what: str) -> list[Json]:
        """Every invoice Invoicing v2's search finds for `search`, page after page."""
        invoices: list[Json] = []
        page = 1
        while True:
            reply = await self._api.rest(
                "POST",
                "/v2/invoicing/search-invoices",
                params={
                    "page": str(page),
                    "page_size": str(INVOICE_PAGE_SIZE),
                    "total_required": "true",
                },
                json_body=search,
                verb="search",
                what=what,
            )
            body = reply.body or {}
            invoices.extend(body.get("items") or [])
            if page >= int(body.get("total_pages") or 1):
                return invoices
            page += 1

    async def _payer_of_transaction(self, transaction_id: str, when: datetime | None) -> Payer:
        """The payer of a capture that no order names, from its own search row."""
        if when is None:
            return Payer(None, None)
        rows = await self._rows(
            when - timedelta(days=1),
            min(when + timedelta(days=29), _now()),
            transaction_id=transaction_id,
        )
        for row in rows:
            payer = row_payer(row)
            if payer.id or payer.email:
                return payer
        return Payer(None, None)

    # --- lookup --------------------------------------------------------------------------

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        if query.kind == "email":
            found = await self._find(query.value)
            return list(await asyncio.gather(*(self._profile(f) for f in found)))
        if query.kind == "invoice_number":
            return await self._by_invoice_number(query.value)
        seed = await self._seed(query.value.strip())
        if seed is None:
            return []
        if not seed.payer.email:
            return [await self._profile(seed)]
        found = await self._find(seed.payer.email)
        same = [f for f in found if seed.payer.id is None or f.payer.id == seed.payer.id]
        if same:
            same[0].merge(seed)
            # The looked-up object's payer first; others sharing the e-mail stay separate.
            return list(await asyncio.gather(*(self._profile(f) for f in same)))
        for other in found:
            if other.payer.id is None:
                seed.merge(other)
        return [await self._profile(seed)]

    async def _by_invoice_number(self, number: str) -> list[GatewayProfile]:
        """The customers of PayPal invoices numbered `number` (Invoicing v2's search), each
        looked up by the e-mail the invoice was sent to."""
        invoices = await self._search_invoices(
            {"invoice_number": number}, f"invoices numbered {number}"
        )
        emails = dict.fromkeys(e.lower() for i in invoices if (e := recipient_email(i)))
        found = await asyncio.gather(*(self._find(e) for e in emails))
        profiles = await asyncio.gather(*(self._profile(f) for fs in found for f in fs))
        return list(profiles)

    async def _seed(self, object_id: str) -> Found | None:
        """What one ID says about its payer, or None if PayPal has no such object."""
        if object_id.startswith("I-"):
            sub = await optional(self._subscription_json(object_id))
            if sub is None:
                return None
            subscriber = sub.get("subscriber") or {}
            payer = Payer(
                subscriber.get("payer_id"),
                subscriber.get("email_address"),
                full_name(subscriber.get("name")),
            )
            return Found(payer, subscriptions={object_id})
        if object_id.startswith("PP-"):  # a dispute: its payment's payer
            found = await optional(disputes.read(self._api, object_id))
            charge_id = disputes.parse_dispute(found).charge_id if found else ""
            return await self._seed(charge_id) if charge_id else None
        if object_id.startswith("INV2-"):
            invoice = await optional(self._invoice_json(object_id))
            if invoice is None:
                return None
            payer = Payer(None, recipient_email(invoice), recipient_name(invoice))
            return Found(payer, invoices={object_id: invoice})
        if _PAYER_ID.fullmatch(object_id):
            return await self._payer_seed(object_id)
        try:
            resolved = await self._resolve(object_id)
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found:
                return await self._refund_seed(object_id)
            raise
        payer = order_payer(resolved.order)
        if payer.id is None and payer.email is None:
            payer = await self._payer_of_transaction(
                object_id, paypal_time(resolved.body.get("create_time"))
            )
        seed = Found(payer)
        if resolved.kind == "capture":
            seed.captures[object_id] = None
        else:
            seed.authorizations[object_id] = None
        return seed

    async def _payer_seed(self, payer_id: str) -> Found | None:
        """A payer ID (what a PayPal customer ID is here), from the lookback's search rows:
        PayPal offers no read of a payer by ID."""
        end = _now()
        rows = await self._rows(end - timedelta(days=self.settings.lookback_days), end)
        for row in reversed(rows):  # the latest row names the payer's current e-mail
            payer = row_payer(row)
            if payer.id == payer_id and payer.email:
                return Found(payer)
        return None

    async def _refund_seed(self, refund_id: str) -> Found | None:
        """A refund ID names the payer of the capture it paid back (its `up` link)."""
        reply = await optional(
            self._api.sdk(
                self._api.sdk_client.payments.get_refund, {"refund_id": refund_id},
                verb="read", what=f"refund {refund_id}",
            )
        )  # fmt: skip
        links = (reply.body.get("links") or []) if reply is not None else []
        up = next((str(link.get("href")) for link in links if link.get("rel") == "up"), "")
        capture_id = up.rpartition("/captures/")[2]
        return await self._seed(capture_id) if "/captures/" in up and capture_id else None

    async def _profile(self, found: Found) -> GatewayProfile:
        """Fetch what a payer owns: orders named by search rows, other payments one by one."""
        newest = sorted(
            found.captures,
            key=lambda cid: row_time(found.captures[cid]) or datetime.max.replace(tzinfo=UTC),
            reverse=True,
        )[: self.max_charges]
        rows = {pid: found.captures[pid] for pid in newest} | found.authorizations
        order_ids = {oid for row in rows.values() if (oid := row_order(row))}
        loose_captures = [c for c in newest if not row_order(found.captures[c])]
        loose_authorizations = [a for a, row in found.authorizations.items() if not row_order(row)]
        captures, authorizations, subscriptions = await asyncio.gather(
            asyncio.gather(*(optional(self._capture_json(c)) for c in loose_captures)),
            asyncio.gather(*(optional(self._authorization_json(a)) for a in loose_authorizations)),
            asyncio.gather(*(optional(self._subscription_json(s)) for s in found.subscriptions)),
        )
        order_ids |= {
            oid
            for p in (*captures, *authorizations)
            if p is not None and (oid := related_id(p, "order_id"))
        }
        fetched = await asyncio.gather(*(optional(self._order_json(o)) for o in order_ids))
        orders = [o for o in fetched if o is not None]

        payer = found.payer
        if payer.id is None and orders:
            known = order_payer(orders[0])
            payer = Payer(known.id, payer.email or known.email, payer.name or known.name)
        # Invoice recipients without PayPal payments are known by e-mail alone.
        customer_id = payer.id or (payer.email or "").lower() or UNKNOWN_PAYER

        refunds_by_capture: dict[str, list[Json]] = {}
        for order in orders:
            for capture_id, refunds in order_refunds(order).items():
                refunds_by_capture.setdefault(capture_id, []).extend(refunds)
        for capture_id, refund_rows in found.row_refunds.items():
            refunds_by_capture.setdefault(
                capture_id, [refund_json_from_row(r) for r in refund_rows]
            )

        # Orders list their captures whole, including any the search has not caught up on.
        capture_bodies = {c["id"]: c for o in orders for c in order_payments(o, "captures")}
        for body in captures:
            if body is not None:
                capture_bodies.setdefault(body["id"], body)
        authorization_bodies = {
            a["id"]: (a, o) for o in orders for a in order_payments(o, "authorizations")
        }
        for body in authorizations:
            if body is not None:
                authorization_bodies.setdefault(body["id"], (body, None))

        charges = [
            parse_capture(body, refunds_by_capture.get(cid, []), customer_id)
            for cid, body in capture_bodies.items()
        ]
        for body, order in authorization_bodies.values():
            if body.get("status") != "CAPTURED":  # its captures stand for it
                charges.append(
                    parse_authorization(
                        body,
                        authorization_captures(order, body["id"]),
                        refunds_by_capture,
                        customer_id,
                    )
                )
        for capture_id in newest:
            row = found.captures[capture_id]
            if capture_id not in capture_bodies and row is not None:
                # Not served by the Payments API (an older sale): the row says enough.
                charges.append(parse_row_charge(row, customer_id))
        charges.sort(key=lambda c: c.created or datetime.min.replace(tzinfo=UTC), reverse=True)
        found_disputes = await disputes.of_charges(self._api, charges, _now())
        charges = _disputed(charges, found_disputes)
        refunds = [
            parse_refund(r, capture_id)
            for capture_id, rs in refunds_by_capture.items()
            if capture_id in capture_bodies or capture_id in newest
            for r in rs
        ]
        invoices = sorted(
            (parse_invoice(i, customer_id) for i in found.invoices.values()),
            key=lambda i: i.created or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )
        return GatewayProfile(
            gateway=NAME,
            customer=Customer(gateway=NAME, id=customer_id, email=payer.email, name=payer.name),
            charges=tuple(charges),
            refunds=tuple(refunds),
            subscriptions=tuple(parse_subscription(s) for s in subscriptions if s is not None),
            invoices=tuple(invoices),
            disputes=tuple(found_disputes),
        )

    # --- actions -------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        resolved = await self._resolve(charge_id)
        capture_id, charge = charge_id, resolved.charge
        if resolved.kind == "authorization":
            if len(resolved.capture_ids) > 1:
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"authorization {charge_id} was captured in {len(resolved.capture_ids)} "
                    f"parts ({', '.join(resolved.capture_ids)}): refund one of those captures",
                    gateway=NAME,
                )
            if resolved.capture_ids:
                capture_id = resolved.capture_ids[0]
                charge = (await self._resolve(capture_id)).charge
        elif resolved.body.get("status") == "PENDING":
            reason_code = (resolved.body.get("status_details") or {}).get("reason", "pending")
            raise GatewayError(
                ErrorCode.not_settled,
                f"capture {charge_id} is still pending at PayPal ({reason_code}): "
                "it can be refunded once it completes",
                gateway=NAME,
            )
        try:
            check_refund(charge, amount)
        except GatewayError as refused:
            if refused.code not in (ErrorCode.already_refunded, ErrorCode.amount_too_large):
                raise
            # Perhaps this very key did it: PayPal replays its answer, or refuses.
            replay = await self._post_refund(capture_id, amount, reason, idempotency_key, True)
            if replay is None:
                raise
            return replay
        refund = await self._post_refund(capture_id, amount, reason, idempotency_key, False)
        assert refund is not None
        return refund

    async def _post_refund(
        self, capture_id: str, amount: Money, reason: str, key: str, probe: bool
    ) -> Refund | None:
        try:
            reply = await self._api.sdk(
                self._api.sdk_client.payments.refund_captured_payment,
                {
                    "capture_id": capture_id,
                    "paypal_request_id": request_id(key),
                    "prefer": "return=representation",
                    # Explicit even for a full refund, so a stale read cannot refund more.
                    # The reason stays ours: PayPal's note_to_payer is e-mailed to the payer.
                    "body": {"amount": money_to_paypal(amount)},
                },
                verb="refund",
                what=f"capture {capture_id}",
            )
        except GatewayError as exc:
            if probe and exc.code in (ErrorCode.already_refunded, ErrorCode.amount_too_large):
                return None
            raise
        return parse_refund(reply.body, capture_id, reason)

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        resolved = await self._resolve(charge_id)
        if resolved.kind != "authorization":
            require_status(resolved.charge, ChargeStatus.authorized, "captured")
        if resolved.body.get("status") == "CAPTURED":
            if not await self._post_capture(charge_id, amount, idempotency_key, True):
                require_status(resolved.charge, ChargeStatus.authorized, "captured")
            return (await self._resolve(charge_id)).charge
        check_capture(resolved.charge, amount)
        await self._post_capture(charge_id, amount, idempotency_key, False)
        return (await self._resolve(charge_id)).charge

    async def _post_capture(
        self, authorization_id: str, amount: Money | None, key: str, probe: bool
    ) -> bool:
        # One capture, final: what is left of the authorization is released, as elsewhere.
        body: Json = {"final_capture": True}
        if amount is not None:
            body["amount"] = money_to_paypal(amount)
        try:
            await self._api.sdk(
                self._api.sdk_client.payments.capture_authorized_payment,
                {
                    "authorization_id": authorization_id,
                    "paypal_request_id": request_id(key),
                    "prefer": "return=representation",
                    "body": body,
                },
                verb="capture",
                what=f"authorization {authorization_id}",
            )
        except GatewayError as exc:
            if probe and exc.raw_code == "AUTHORIZATION_ALREADY_CAPTURED":
                return False
            raise
        return True

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        resolved = await self._resolve(charge_id)
        if resolved.kind != "authorization":
            require_status(resolved.charge, ChargeStatus.authorized, "voided")
        if resolved.body.get("status") == "VOIDED":
            if not await self._post_void(charge_id, idempotency_key, True):
                require_status(resolved.charge, ChargeStatus.authorized, "voided")
            return (await self._resolve(charge_id)).charge
        require_status(resolved.charge, ChargeStatus.authorized, "voided")
        await self._post_void(charge_id, idempotency_key, False)
        return (await self._resolve(charge_id)).charge

    async def _post_void(self, authorization_id: str, key: str, probe: bool) -> bool:
        try:
            await self._api.sdk(
                self._api.sdk_client.payments.void_payment,
                {
                    "authorization_id": authorization_id,
                    "paypal_request_id": request_id(key),
                    "prefer": "return=representation",
                },
                verb="void",
                what=f"authorization {authorization_id}",
            )
        except GatewayError as exc:
            if probe and exc.raw_code == "PREVIOUSLY_VOIDED":
                return False
            raise
        return True

    async def subscription_payment(self, subscription_id: str) -> PaidPeriod:
        """The newest completed payment of the subscription's transactions (from its last
        payment's day on), for the period up to its next billing time."""
        sub = await self._subscription_json(subscription_id)
        billing = sub.get("billing_info") or {}
        last = paypal_time((billing.get("last_payment") or {}).get("time"))
        end = paypal_time(billing.get("next_billing_time"))
        paid: list[Json] = []
        if last is not None:
            reply = await self._api.sdk(
                self._api.sdk_client.subscriptions.list_subscription_transactions,
                {"id": subscription_id, "start_time": _stamp(last - timedelta(days=1)),
                 "end_time": _stamp(_now())},
                verb="read", what=f"payments of subscription {subscription_id}",
            )  # fmt: skip
            paid = [
                t for t in reply.body.get("transactions") or [] if t.get("status") == "COMPLETED"
            ]
        paid.sort(key=lambda t: paypal_time(t.get("time")) or _now(), reverse=True)
        start = paypal_time(paid[0].get("time")) if paid else None
        if start is None or end is None or end <= start:
            raise nothing_paid(
                NAME, subscription_id, "no completed payment for a period still running"
            )
        return PaidPeriod(await self.get_charge(str(paid[0]["id"])), start, end)

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        if at_period_end:
            raise GatewayError(
                ErrorCode.unsupported,
                "PayPal cannot cancel at the end of the billing period: a PayPal subscription "
                "is cancelled at once. Cancel it now instead, or suspend it in PayPal.",
                gateway=NAME,
            )
        marker = _reference(idempotency_key)
        current = await self._subscription_json(subscription_id)
        if current.get("status") in ("CANCELLED", "EXPIRED"):
            return self._cancelled_by(current, marker)
        try:
            await self._api.sdk(
                self._api.sdk_client.subscriptions.cancel_subscription,
                {"id": subscription_id, "body": {"reason": _cancel_reason(reason, marker)}},
                verb="cancel",
                what=f"subscription {subscription_id}",
                retry=False,  # no request ID: an unknown outcome is settled by a re-read
            )
        except GatewayError as exc:
            if exc.raw_code != "SUBSCRIPTION_STATUS_INVALID":
                raise
            # Cancelled meanwhile, perhaps by a concurrent run of this same key.
            return self._cancelled_by(await self._subscription_json(subscription_id), marker)
        return parse_subscription(await self._subscription_json(subscription_id))

    async def set_paused(
        self, subscription_id: str, paused: bool, *, idempotency_key: str
    ) -> Subscription:
        """Suspend or activate: no request ID here, so the status is read first and after an
        unknown outcome (already so: the same result)."""
        verb, target = ("suspend", "SUSPENDED") if paused else ("activate", "ACTIVE")
        current = await self._subscription_json(subscription_id)
        if current.get("status") == target:
            return parse_subscription(current)
        call = getattr(self._api.sdk_client.subscriptions, f"{verb}_subscription")
        marker = _reference(idempotency_key)
        reason = _cancel_reason("paused" if paused else "resumed", marker)
        try:
            await self._api.sdk(
                call, {"id": subscription_id, "body": {"reason": reason}},
                verb=verb, what=f"subscription {subscription_id}", retry=False,
            )  # fmt: skip
        except GatewayError:
            fresh = await self._subscription_json(subscription_id)
            if fresh.get("status") != target:  # done meanwhile, perhaps by this same key
                raise
            return parse_subscription(fresh)
        return parse_subscription(await self._subscription_json(subscription_id))

    def _cancelled_by(self, body: Json, marker: str) -> Subscription:
        if marker in str(body.get("status_change_note") or ""):
            return parse_subscription(body)
        raise GatewayError(
            ErrorCode.invalid_state,
            f"subscription {body.get('id')} is already {parse_subscription(body).status.value}",
            gateway=NAME,
            raw_code=str(body.get("status")),
        )

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        invoice = await self._invoice_json(invoice_id)
        status = invoice.get("status")
        if status in ("DRAFT", "SCHEDULED"):
            await self._api.rest(
                "POST",
                f"/v2/invoicing/invoices/{invoice_id}/send",
                json_body={"send_to_recipient": True, "send_to_invoicer": False},
                verb="send",
                what=f"invoice {invoice_id}",
                retry=False,  # no request ID: an unknown outcome is settled by a re-read
            )
            invoice = await self._invoice_json(invoice_id)
        elif status not in ("SENT", "UNPAID", "PARTIALLY_PAID", "PAYMENT_PENDING"):
            raise GatewayError(
                ErrorCode.invalid_state,
                f"invoice {invoice_id} is {str(status).lower()}: there is nothing to send",
                gateway=NAME,
                raw_code=str(status),
            )
        # Already with the customer: sending again would e-mail them twice on a retry.
        return parse_invoice(invoice, (recipient_email(invoice) or UNKNOWN_PAYER).lower())

    # --- disputes (bot/gateways/paypal/disputes.py) ---------------------------------------

    async def get_dispute(self, dispute_id: str) -> Dispute:
        return await disputes.get(self._api, dispute_id)

    async def open_disputes(self) -> list[Dispute]:
        return await disputes.open_disputes(self._api)

    async def precheck_dispute(self, dispute: Dispute, *, accept: bool) -> None:
        """Evidence for an inquiry (status OPEN) is refused now, not after approval: the
        dispute is read afresh for PayPal's own status, which our model does not keep."""
        if not accept:
            disputes.require_evidence_taken(await disputes.read(self._api, dispute.id))

    async def accept_dispute(self, dispute_id: str, *, idempotency_key: str) -> Dispute:
        return await disputes.accept(self._api, dispute_id, idempotency_key)

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: Evidence, *, idempotency_key: str
    ) -> Dispute:
        return await disputes.submit(self._api, dispute_id, evidence, idempotency_key)

    # --- webhooks ------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        """Verified events; a buyer's approval of one of our pay links is captured here (the
        order, read afresh, decides), so it arrives as the payment it became."""
        events = await verify_and_parse(self._api, self.settings.webhook_id, body, headers)
        return [await self._settled(e) for e in events]

    async def _settled(self, event: GatewayEvent) -> GatewayEvent:
        if event.raw_type != "CHECKOUT.ORDER.APPROVED" or "payment_request" not in event.detail:
            return event
        order = await optional(orders.read(self._api, event.object_id))
        if order is None:  # lapsed at PayPal: nothing to capture
            return event
        link = orders.pay_link_of(await orders.settle(self._api, order), _now())
        if link.status != PayLinkStatus.paid:
            return event  # cancelled by us meanwhile, or still pending
        return event.model_copy(
            update={"kind": EventKind.payment_succeeded, "related_id": link.charge_id,
                    "status": "COMPLETED"}
        )  # fmt: skip

    async def sync_page(
        self, kind: str, cursor: str | None, *, since: datetime | None, limit: int
    ) -> SyncPage:
        """See bot/gateways/paypal/sync.py: what PayPal lists, and the 3-year default."""
        return await sync.page(self._api, kind, cursor, since=since, limit=limit, now=_now())

    # --- pay links (bot/gateways/paypal/orders.py) ---------------------------------------

    async def create_pay_link(
        self, customer_id: str, amount: Money, *, description: str, reference: str,
        idempotency_key: str,
    ) -> PayLink:  # fmt: skip
        """An Orders v2 checkout; the customer is who approves it on PayPal (PayPal takes
        no payer ID for a new order)."""
        order = await orders.create(
            self._api, amount, description=description, reference=reference, key=idempotency_key
        )
        return orders.pay_link_of(order, _now())

    async def get_pay_link(self, link_id: str) -> PayLink:
        """The order as it stands; an approved one is captured first (exactly once)."""
        order = await optional(orders.read(self._api, link_id))
        if order is None:  # PayPal no longer serves an order it let lapse
            return PayLink(gateway=NAME, id=link_id, status=PayLinkStatus.expired)
        return orders.pay_link_of(await orders.settle(self._api, order), _now())

    async def cancel_pay_link(self, link_id: str) -> PayLink:
        """Orders v2 has no cancel: the order is marked so the bot never captures it, and
        PayPal lets it lapse; one paid already is left as it is."""
        order = await optional(orders.read(self._api, link_id))
        if order is None:
            return PayLink(gateway=NAME, id=link_id, status=PayLinkStatus.expired)
        return await orders.cancel(self._api, order, _now())


# --- helpers -------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _windows(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end] cut into ranges Transaction Search accepts (at most 31 days)."""
    cursor = start
    while cursor < end:
        stop = min(cursor + SEARCH_WINDOW, end)
        yield cursor, stop
        cursor = stop


def _disputed(charges: list[Charge], found: list[Dispute]) -> list[Charge]:
    """A payment with a dispute not yet decided shows as disputed (PayPal's capture does not)."""
    undecided = DisputeStatus.needs_response, DisputeStatus.under_review
    held = {d.charge_id for d in found if d.status in undecided}
    return [
        c.model_copy(update={"status": ChargeStatus.disputed}) if c.id in held else c
        for c in charges
    ]


def _reference(key: str) -> str:
    return "cd:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _cancel_reason(reason: str, marker: str) -> str:
    # PayPal caps the reason at 128 characters; the marker must survive whole.
    room = 128 - len(marker) - 3
    text = " ".join(reason.split()) or "cancelled"
    if len(text) > room:
        text = text[: room - 1] + "…"
    return f"{text} ({marker})"
