"""The Recurly gateway: reads and actions through `RecurlyAPI`, objects through `mapping`.

- Customers are accounts, found by e-mail (`GET /accounts?email=`; several accounts
  may share one address, each is its own profile) or by any ID an agent pastes: an
  account ID or code, a transaction, an invoice ID or number, a subscription.
- A charge is a payment transaction; refunds are per invoice at Recurly
  (`POST /invoices/{id}/refund`). Every refund names the amount and
  `refund_method: all_transaction`: Recurly's default, `credit_first`, would hand the
  part of an invoice paid with account credit back as credit instead of money, and
  `all_transaction` gives money back or refuses. The amount is capped beforehand at
  what is left of the payment itself.
- Recurly has no idempotency key. Each refund's credit invoice carries a reference
  made from our key in its customer notes; before refunding, and after an answer that
  never came, the invoice's related credit invoices are read for it, so a retry
  returns the first refund instead of paying twice.
- Cancel at period end is `PUT /subscriptions/{id}/cancel` with the configured
  timeframe (term end by default); cancel now is `DELETE /subscriptions/{id}` with
  `refund` none (what the approval flow sends), partial or full. Recurly ends a
  subscription once: a retry finds it ended and changes nothing.
- New subscriptions and plan changes are in `plans.py`; a charge of the saved card is a
  one-off purchase (`POST /purchases`) whose invoice carries our reference in its customer
  notes, as a refund's credit invoice does: a retry finds it instead of charging again.
- The billing index reads the site's lists oldest first (`sync.py`).
- Capture and void are not offered (Recurly's authorize-and-capture purchases are not
  built here), nor invoices sent by us: Recurly e-mails its own, nor pay links: Recurly's
  API describes no page that pays one invoice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote

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
from bot.gateways.recurly import plans, sync
from bot.gateways.recurly.client import RecurlyAPI, listing
from bot.gateways.recurly.mapping import (
    CHARGE_TYPES,
    NAME,
    PAYMENT_TYPES,
    Json,
    amount_to_recurly,
    coupon_of,
    describe_coupon,
    fixed_currencies,
    has_reference,
    is_invoice_number,
    is_object_id,
    is_our_refund,
    is_unsettled,
    mini_id,
    parse_charge,
    parse_customer,
    parse_invoice,
    parse_refund,
    parse_subscription,
    recurly_time,
    reference_note,
    refund_note,
    refunds_by_charge,
    refunds_in,
)
from bot.gateways.recurly.webhooks import parse_event, to_read, verify
from bot.gateways.termination import PaidPeriod, PlannedRefund, nothing_paid
from bot.models import (
    Address,
    Charge,
    Coupon,
    Customer,
    GatewayProfile,
    Invoice,
    PlanChange,
    PlanPrice,
    Refund,
    Subscription,
)
from bot.money import Money
from bot.settings import RecurlySettings

log = logging.getLogger(__name__)

TerminationRefund = Literal["none", "partial", "full"]
# A refund Recurly made this long before the termination it came with is an older one.
_TERMINATION_SLACK = timedelta(minutes=1)
REFUND_METHOD = "all_transaction"  # money back to payments, or a refusal: never account credit
_UNKNOWN_OUTCOME = (ErrorCode.timeout, ErrorCode.unavailable)
# Recurly pauses for a number of billing cycles, never open-ended: `resume` ends it sooner.
PAUSE_CYCLES = 12
_REMEMBERED = 10_000  # admin paths kept for dashboard links
_ENDED = ("expired", "failed")
_HOLDS = (
    "a Recurly authorization is a card check that Recurly releases itself, and captures of "
    "authorized purchases are not built here: use Recurly's admin"
)


_NO_DISPUTES = (
    "Recurly has no dispute API: answer the chargeback in your payment processor's dashboard"
)


class RecurlyGateway(Gateway):
    """One Recurly site (API v2021-02-25): accounts, payments, invoices, subscriptions.

    `backoff` is the first retry's mean pause in seconds (doubling after);
    `max_charges` caps how many transactions and invoices a lookup reads per account.
    """

    name = NAME
    capabilities = frozenset(
        {
            Capability.lookup,
            Capability.refund,
            Capability.partial_refund,
            Capability.cancel_subscription,
            Capability.cancel_with_refund,
            Capability.coupon,
            Capability.invoices,
            Capability.webhooks,
            Capability.hosted_card_update,
            Capability.customer_details,
            Capability.pause_subscription,
            Capability.create_subscription,
            Capability.change_plan,
            Capability.charge_saved_card,
            Capability.sync,
        }
    )
    limits: ClassVar[Mapping[Capability, str]] = {
        Capability.hosted_card_update: "needs recurly.subdomain",
        Capability.pause_subscription: f"from the next renewal, for {PAUSE_CYCLES} billing "
        "cycles at most (Recurly pauses for a number of cycles)",
        Capability.cancel_with_refund: "Recurly's terminate (refund full or partial): it "
        "prorates the partial refund itself",
        Capability.lookup: "by e-mail, ID and number: no search by name or part of an e-mail",
        Capability.coupon: "removed from the account (Recurly removes no single subscription's)",
        Capability.create_subscription: "on the account's saved billing info; a price is a "
        "plan code and currency (pro:EUR)",
        Capability.change_plan: "now (Recurly prorates it) or at the next bill date (no "
        "proration); refused if Recurly's fresh preview differs from the approved one",
        Capability.charge_saved_card: "a one-off purchase (POST /purchases) on the account's "
        "billing info",
        Capability.sync: "no disputes (Recurly has no dispute API)",
    }
    missing: ClassVar[Mapping[Capability, str]] = {
        Capability.payment_link: "Recurly's API has no pay page for one invoice: its hosted "
        "account page (hosted_login_token) opens the whole account, not a single payment",
        Capability.accept_dispute: _NO_DISPUTES,
        Capability.dispute_evidence: _NO_DISPUTES,
    }
    max_listed = 100  # subscriptions, accounts and coupon redemptions read per lookup

    def __init__(
        self, settings: RecurlySettings, *, backoff: float = 0.5, max_charges: int = 1000
    ) -> None:
        self._api = RecurlyAPI(settings, backoff=backoff)
        self.settings = settings
        self.max_charges = max_charges
        self._paths: OrderedDict[str, str] = OrderedDict()
        self._plans: dict[str, Json] = {}

    async def close(self) -> None:
        await self._api.close()

    # --- links -----------------------------------------------------------------------------

    def site_url(self) -> str | None:
        """The site's own address (its admin and hosted pages), when configured."""
        if self.settings.site_url is not None:
            return str(self.settings.site_url).rstrip("/")
        if self.settings.subdomain:
            return f"https://{self.settings.subdomain}.recurly.com"
        return None

    def dashboard_url(self, object_id: str) -> str | None:
        """The object's page in Recurly's admin, for objects this gateway has read.

        Recurly's admin addresses accounts by code, invoices by number, subscriptions
        and transactions by UUID, none of which an object ID says by itself.
        """
        base, path = self.site_url(), self._paths.get(object_id)
        return f"{base}{path}" if base and path else None

    def _remember(self, *objects: Mapping[str, Any] | None) -> None:
        for obj in objects:
            if not obj or not obj.get("id"):
                continue
            kind = obj.get("object")
            if kind == "account" and obj.get("code"):
                path = f"/accounts/{quote(str(obj['code']), safe='')}"
            elif kind == "invoice" and obj.get("number"):
                path = f"/invoices/{quote(str(obj['number']), safe='')}"
            elif kind in ("transaction", "subscription") and obj.get("uuid"):
                path = f"/{kind}s/{quote(str(obj['uuid']), safe='')}"
            else:
                continue
            self._paths[str(obj["id"])] = path
            self._paths.move_to_end(str(obj["id"]))
        while len(self._paths) > _REMEMBERED:
            self._paths.popitem(last=False)

    # --- single reads ----------------------------------------------------------------------

    async def _transaction(self, transaction_id: str) -> Json:
        if not is_object_id(transaction_id):
            raise GatewayError(
                ErrorCode.not_found, f"Recurly has no transaction {transaction_id}", gateway=NAME
            )
        txn = await self._api.read(
            lambda c: c.get_transaction(transaction_id), f"transaction {transaction_id}"
        )
        self._remember(txn)
        return txn

    async def _payment(self, charge_id: str) -> Json:
        """A transaction that is a charge (a payment or an authorization hold)."""
        txn = await self._transaction(charge_id)
        if txn.get("type") not in CHARGE_TYPES:
            raise GatewayError(
                ErrorCode.not_found,
                f"Recurly transaction {charge_id} is a {txn.get('type')}, not a payment",
                gateway=NAME,
            )
        return txn

    async def _invoice(self, invoice_id: str) -> Json:
        invoice = await self._api.read(lambda c: c.get_invoice(invoice_id), f"invoice {invoice_id}")
        self._remember(invoice)
        return invoice

    async def _subscription(self, subscription_id: str) -> Json:
        if not is_object_id(subscription_id):
            raise GatewayError(
                ErrorCode.not_found, f"Recurly has no subscription {subscription_id}", gateway=NAME
            )
        sub = await self._api.read(
            lambda c: c.get_subscription(subscription_id), f"subscription {subscription_id}"
        )
        self._remember(sub)
        return sub

    async def _plan(self, plan_id: str | None) -> Json | None:
        """A plan (for its interval), read once: a plan's interval never changes."""
        if not plan_id:
            return None
        if plan_id not in self._plans:
            found = await self._api.find(lambda c: c.get_plan(plan_id), f"plan {plan_id}")
            if found is None:
                return None
            self._plans[plan_id] = found
        return self._plans[plan_id]

    async def _refunds_of(self, txn: Mapping[str, Any]) -> list[Json]:
        """Every refund of a payment: the account's refund transactions naming it."""
        if txn.get("type") == "authorization":
            return []
        account_id = mini_id(txn.get("account"))
        if account_id is None:
            return []
        refunds = await self._api.items(
            lambda c: c.list_account_transactions(account_id, **listing(type="refund")),
            f"refunds of account {account_id}",
            self.max_charges * 10,
        )
        return refunds_by_charge(refunds).get(str(txn["id"]), [])

    async def _charge(self, txn: Json) -> Charge:
        invoice_id = mini_id(txn.get("invoice"))
        refunds, invoice = await asyncio.gather(
            self._refunds_of(txn),
            self._invoice(invoice_id) if invoice_id else _nothing(),
        )
        return parse_charge(txn, refunds, invoice)

    async def get_charge(self, charge_id: str) -> Charge:
        return await self._charge(await self._payment(charge_id))

    async def get_subscription(self, subscription_id: str) -> Subscription:
        sub = await self._subscription(subscription_id)
        return parse_subscription(sub, await self._plan(mini_id(sub.get("plan"))))

    # --- lookup ------------------------------------------------------------------------------

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        if query.kind == "email":
            accounts = await self._api.items(
                lambda c: c.list_accounts(**listing(email=query.value)),
                f"accounts with email {query.value}",
                self.max_listed,
            )
            accounts.sort(key=lambda a: str(a.get("created_at") or ""), reverse=True)
            return list(await asyncio.gather(*(self._profile(a, {}) for a in accounts)))
        return await self._lookup_id(query.value.strip().lstrip("#"))

    async def _lookup_id(self, text: str) -> list[GatewayProfile]:
        """Whatever Recurly object the text names, and the account that owns it."""
        if not text:
            return []
        plausible = is_object_id(text)
        reads: dict[str, Any] = {
            "account_code": self._api.find(
                lambda c: c.get_account(f"code-{text}"), f"account with code {text}"
            ),
        }
        if plausible:
            reads |= {
                "account": self._api.find(lambda c: c.get_account(text), f"account {text}"),
                "transaction": self._api.find(
                    lambda c: c.get_transaction(text), f"transaction {text}"
                ),
                "invoice": self._api.find(lambda c: c.get_invoice(text), f"invoice {text}"),
                "subscription": self._api.find(
                    lambda c: c.get_subscription(text), f"subscription {text}"
                ),
            }
        if is_invoice_number(text):
            reads["invoice_number"] = self._api.find(
                lambda c: c.get_invoice(f"number-{text}"), f"invoice number {text}"
            )
        found = dict(zip(reads, await asyncio.gather(*reads.values()), strict=True))
        accounts: dict[str, Json] = {}
        extras: dict[str, dict[str, Json]] = {}
        for name, obj in found.items():
            if obj is None:
                continue
            if name.startswith("account"):
                accounts.setdefault(str(obj["id"]), obj)
                continue
            owner = mini_id(obj.get("account"))
            if owner is not None:
                # The looked-up object is shown even if older than the lookup's caps.
                extras.setdefault(owner, {})[str(obj["id"])] = obj
        missing = [a for a in extras if a not in accounts]
        fetched = await asyncio.gather(
            *(self._api.find(lambda c, a=a: c.get_account(a), f"account {a}") for a in missing)
        )
        for account in fetched:
            if account is not None:
                accounts.setdefault(str(account["id"]), account)
        return list(
            await asyncio.gather(
                *(self._profile(a, extras.get(i, {})) for i, a in accounts.items())
            )
        )

    async def _profile(self, account: Json, extra: Mapping[str, Json]) -> GatewayProfile:
        """Everything of one account, newest first, up to the caps."""
        account_id = str(account["id"])
        txns, invoices, subs, redemptions = await asyncio.gather(
            self._api.items(
                lambda c: c.list_account_transactions(account_id, **listing()),
                f"transactions of account {account_id}",
                self.max_charges,
            ),
            self._api.items(
                lambda c: c.list_account_invoices(account_id, **listing(type="charge")),
                f"invoices of account {account_id}",
                self.max_charges,
            ),
            self._api.items(
                lambda c: c.list_account_subscriptions(account_id, **listing()),
                f"subscriptions of account {account_id}",
                self.max_listed,
            ),
            self._api.items(
                lambda c: c.list_active_coupon_redemptions(account_id),
                f"coupons of account {account_id}",
                self.max_listed,
            ),
        )
        for obj in extra.values():
            table = {"transaction": txns, "invoice": invoices, "subscription": subs}.get(
                str(obj.get("object"))
            )
            if table is not None and all(o.get("id") != obj["id"] for o in table):
                table.append(obj)
        self._remember(account, *txns, *invoices, *subs)
        refunds = refunds_by_charge(txns)
        by_invoice = {str(i["id"]): i for i in invoices}
        charges = [
            parse_charge(
                t, refunds.get(str(t["id"]), []), by_invoice.get(mini_id(t.get("invoice")) or "")
            )
            for t in txns
            if t.get("type") in CHARGE_TYPES
        ]
        plan_ids = {p for s in subs if (p := mini_id(s.get("plan")))}
        plans = dict(
            zip(plan_ids, await asyncio.gather(*(self._plan(p) for p in plan_ids)), strict=True)
        )
        epoch = datetime.min.replace(tzinfo=UTC)
        return GatewayProfile(
            gateway=NAME,
            customer=parse_customer(account),
            charges=tuple(sorted(charges, key=lambda c: (c.created or epoch, c.id), reverse=True)),
            refunds=tuple(parse_refund(t) for t in txns if t.get("type") == "refund"),
            subscriptions=tuple(
                parse_subscription(s, plans.get(mini_id(s.get("plan")) or "")) for s in subs
            ),
            invoices=tuple(
                sorted(
                    (parse_invoice(i) for i in invoices if i.get("type") != "credit"),
                    key=lambda i: (i.created or epoch, i.id),
                    reverse=True,
                )
            ),
            discounts=tuple(
                describe_coupon(r.get("coupon") or {}, r.get("currency")) for r in redemptions
            ),
        )

    # --- refunds -----------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        txn = await self._payment(charge_id)
        if txn.get("type") == "authorization":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"{charge_id} is an authorization hold at Recurly: it took no money, so there is "
                "nothing to refund (an unused hold lapses on its own)",
                gateway=NAME,
            )
        invoice_id = mini_id(txn.get("invoice"))
        if invoice_id is None:
            raise GatewayError(
                ErrorCode.invalid_state,
                f"payment {charge_id} belongs to no invoice: Recurly refunds invoices",
                gateway=NAME,
            )
        earlier = await self._earlier_refund(invoice_id, charge_id, idempotency_key, reason)
        if earlier is not None:
            return earlier
        if is_unsettled(txn):
            raise GatewayError(
                ErrorCode.not_settled,
                f"payment {charge_id} has not settled yet ({txn.get('status')} at Recurly): "
                "it can be refunded once it succeeds",
                gateway=NAME,
                raw_code=str(txn.get("status")),
            )
        charge = await self._charge(txn)
        check_refund(charge, amount)
        body = {
            "type": "amount",
            "amount": amount_to_recurly(amount),
            "refund_method": REFUND_METHOD,
            "credit_customer_notes": refund_note(idempotency_key),
        }
        number = (txn.get("invoice") or {}).get("number") or invoice_id
        try:
            credit = await self._api.write(
                lambda c: c.refund_invoice(invoice_id, body),
                verb="refund",
                what=f"invoice {number} (payment {charge_id})",
            )
        except GatewayError as exc:
            if exc.code in _UNKNOWN_OUTCOME:
                # The answer was lost, not necessarily the refund: look before anyone retries.
                try:
                    landed = await self._earlier_refund(
                        invoice_id, charge_id, idempotency_key, reason
                    )
                except GatewayError:
                    landed = None
                if landed is not None:
                    return landed
                raise
            # Money moved since our read (a refund in Recurly's admin): say how much is left.
            try:
                check_refund(await self.get_charge(charge_id), amount)
            except GatewayError as ours:
                ours.raw_code, ours.raw_message = exc.raw_code, exc.raw_message
                raise ours from None
            raise
        self._remember(credit)
        return self._refund_in(credit, charge_id, reason)

    async def _earlier_refund(
        self, invoice_id: str, charge_id: str, idempotency_key: str, reason: str
    ) -> Refund | None:
        """The refund this key already made, found by the reference in its credit invoice."""
        related = await self._api.items(
            lambda c: c.list_related_invoices(invoice_id, **listing()),
            f"credit invoices of invoice {invoice_id}",
            self.max_charges,
        )
        for credit in related:
            if credit.get("type") == "credit" and is_our_refund(credit, idempotency_key):
                return self._refund_in(credit, charge_id, reason)
        return None

    def _refund_in(self, credit: Mapping[str, Any], charge_id: str, reason: str) -> Refund:
        """Our refund of `charge_id` as its credit invoice records it."""
        mine = refunds_in(credit, charge_id)
        others = [
            t
            for t in credit.get("transactions") or []
            if t.get("type") == "refund" and t.get("original_transaction_id") != charge_id
        ]
        if others:
            log.warning(
                "Recurly credit invoice %s also refunded %s",
                credit.get("number") or credit.get("id"),
                ", ".join(str(t.get("original_transaction_id")) for t in others),
            )
        if not mine:
            raise GatewayError(
                ErrorCode.invalid_state,
                f"Recurly recorded credit invoice {credit.get('number') or credit.get('id')} "
                f"without giving money back to payment {charge_id}: check it in Recurly",
                gateway=NAME,
            )
        return parse_refund(mine[0], reason)

    # --- subscriptions -----------------------------------------------------------------------

    async def update_customer(
        self,
        customer_id: str,
        *,
        name: str | None = None,
        address: Address | None = None,
        idempotency_key: str,
    ) -> Customer:
        """`PUT /accounts/{id}`: first and last name, the billing address. The same values
        twice change nothing, so a retry needs no key of its own."""
        body: dict[str, Any] = {}
        if name is not None:
            body["first_name"], body["last_name"] = split_name(name)
        if address is not None:
            body["address"] = {
                "street1": address.line1 or "", "street2": address.line2 or "",
                "city": address.city or "", "region": address.state or "",
                "postal_code": address.postal_code or "", "country": address.country or "",
            }  # fmt: skip
        account = await self._api.write(
            lambda c: c.update_account(customer_id, body),
            verb="update", what=f"account {customer_id}",
        )  # fmt: skip
        return parse_customer(account)

    async def cancel_subscription(
        self,
        subscription_id: str,
        *,
        at_period_end: bool,
        reason: str,
        idempotency_key: str,
        refund: TerminationRefund = "none",
    ) -> Subscription:
        """Cancel at period end, or terminate now with Recurly's `refund` (none, partial, full).

        `partial` refunds the unused part of the current period, `full` the last invoice:
        both move money, so only an agent's explicit choice sends them.
        """
        if refund not in ("none", "partial", "full"):
            raise GatewayError(
                ErrorCode.rejected,
                f"refund on termination is none, partial or full, not {refund!r}",
                gateway=NAME,
            )
        sub = await self._subscription(subscription_id)
        plan = await self._plan(mini_id(sub.get("plan")))
        state = sub.get("state")
        if state in _ENDED or (at_period_end and state == "canceled"):
            # Already where it was asked to go (a retry of ours finds it so; the command
            # refuses subscriptions that had ended before it was asked).
            return parse_subscription(sub, plan)
        if at_period_end:
            body = {"timeframe": self.settings.cancel_timeframe}
            call: Any = lambda c: c.cancel_subscription(subscription_id, body=body)  # noqa: E731
            wanted = ("canceled", *_ENDED)
        else:
            params = {"refund": refund}
            call = lambda c: c.terminate_subscription(subscription_id, params=params)  # noqa: E731
            wanted = _ENDED
        try:
            changed = await self._api.write(
                call, verb="cancel", what=f"subscription {subscription_id}"
            )
        except GatewayError as exc:
            if exc.code not in _UNKNOWN_OUTCOME and exc.code != ErrorCode.rejected:
                raise
            # An answer lost, or a refusal because it changed meanwhile: what is it now?
            fresh = await self._subscription(subscription_id)
            if fresh.get("state") not in wanted:
                raise
            changed = fresh
        self._remember(changed)
        return parse_subscription(changed, plan)

    async def set_paused(
        self, subscription_id: str, paused: bool, *, idempotency_key: str
    ) -> Subscription:
        """`PUT .../pause` (0 cycles cancels a pause not yet started) or `.../resume` (a
        paused one). No key here: read first, and again after an unknown outcome."""
        cycles = PAUSE_CYCLES if paused else 0
        sub = await self._subscription(subscription_id)
        plan = await self._plan(mini_id(sub.get("plan")))
        if parse_subscription(sub, plan).paused == (cycles > 0):
            return parse_subscription(sub, plan)  # already so: the same result
        if sub.get("state") == "paused":
            call: Any = lambda c: c.resume_subscription(subscription_id)  # noqa: E731
        else:
            body = {"remaining_pause_cycles": cycles}
            call = lambda c: c.pause_subscription(subscription_id, body)  # noqa: E731
        verb = "pause" if cycles else "resume"
        try:
            changed = await self._api.write(call, verb=verb, what=f"subscription {subscription_id}")
        except GatewayError as exc:
            if exc.code not in _UNKNOWN_OUTCOME:
                raise
            changed = await self._subscription(subscription_id)
            if parse_subscription(changed, plan).paused != (cycles > 0):
                raise
        self._remember(changed)
        return parse_subscription(changed, plan)

    async def subscription_payment(self, subscription_id: str) -> PaidPeriod:
        """The newest paid charge invoice naming the subscription, its successful payment,
        and the subscription's current period."""
        sub = await self._subscription(subscription_id)
        account_id = mini_id(sub.get("account")) or ""
        invoices = await self._api.items(
            lambda c: c.list_account_invoices(account_id, **listing(type="charge")),
            f"invoices of account {account_id}",
            self.max_charges,
        )
        paid = sorted(
            (i for i in invoices
             if subscription_id in (i.get("subscription_ids") or []) and i.get("state") == "paid"),
            key=lambda i: str(i.get("created_at") or ""), reverse=True,
        )  # fmt: skip
        payment = next(
            (t for i in paid for t in i.get("transactions") or []
             if t.get("type") in PAYMENT_TYPES and t.get("status") == "success"),
            None,
        )  # fmt: skip
        start = recurly_time(sub.get("current_period_started_at"))
        end = recurly_time(sub.get("current_period_ends_at"))
        if payment is None or start is None or end is None:
            raise nothing_paid(NAME, subscription_id, "no paid invoice")
        return PaidPeriod(await self.get_charge(str(payment["id"])), start, end)

    async def cancel_and_refund(
        self, subscription_id: str, refund: PlannedRefund, *, reason: str, idempotency_key: str
    ) -> Refund:
        """Recurly's own terminate, with `full` (last) or `partial` (prorated): one call, which a
        retry does not repeat (it finds the subscription ended). Recurly works the partial
        amount out itself as it terminates: if time passed since the request, a little less
        than the card said. The refund returned is the one Recurly made of the planned payment
        as it terminated."""
        ended = await self.cancel_subscription(
            subscription_id, at_period_end=False, reason=reason, idempotency_key=idempotency_key,
            refund="full" if refund.mode == "last" else "partial",
        )  # fmt: skip
        since = (ended.canceled_at or datetime.now(UTC)) - _TERMINATION_SLACK
        made = [
            t for t in await self._refunds_of(await self._payment(refund.charge_id))
            if (recurly_time(t.get("created_at")) or since) >= since
        ]  # fmt: skip
        if not made:
            raise GatewayError(
                ErrorCode.invalid_state,
                f"{subscription_id} is ended, but Recurly refunded nothing of "
                f"{refund.charge_id}: check it in Recurly",
                gateway=NAME,
            )
        return parse_refund(max(made, key=lambda t: str(t.get("created_at") or "")), reason)

    # --- new subscriptions, plan changes, charges -------------------------------------------

    async def _account(self, customer_id: str) -> Json:
        if not customer_id.strip() or "/" in customer_id:
            raise GatewayError(
                ErrorCode.not_found, f"Recurly has no account {customer_id!r}", gateway=NAME
            )
        account = await self._api.read(
            lambda c: c.get_account(customer_id), f"account {customer_id}"
        )
        self._remember(account)
        return account

    async def get_price(self, price: str) -> PlanPrice:
        """A plan and one of its currencies (`pro-monthly:EUR`, or the code of a plan with
        one currency)."""
        return (await plans.read_plan(self._api, price))[1]

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
        """`POST /subscriptions` for the account (by its code), charged to its billing info
        unless a trial comes first. No idempotency key: the subscription carries our
        reference in its customer notes, and a retry finds it there."""
        if quantity < 1:
            raise GatewayError(
                ErrorCode.rejected, "a subscription needs 1 or more seats", gateway=NAME
            )
        (plan, chosen), account = await asyncio.gather(
            plans.read_plan(self._api, price), self._account(customer_id)
        )
        sub = await plans.create_subscription(
            self._api, account, chosen, idempotency_key,
            quantity=quantity, trial_days=trial_days, coupon=coupon,
        )  # fmt: skip
        self._remember(sub)
        return parse_subscription(sub, plan)

    async def preview_plan_change(
        self, subscription_id: str, price: str, *, now: bool, prorate: bool, at: int | None = None
    ) -> PlanChange:
        """Recurly's own preview (`POST .../change/preview`); `at` is recorded, not used:
        Recurly prorates as of the moment it is asked."""
        sub = await self._subscription(subscription_id)
        when = at or int(datetime.now(UTC).timestamp())
        return await plans.preview(self._api, sub, price, now=now, prorate=prorate, at=when)

    async def change_plan(self, change: PlanChange, *, idempotency_key: str) -> Subscription:
        """The previewed change, once: a subscription already so (a retry) is the result;
        a fresh preview that differs from the approved one refuses it."""
        sub = await self._subscription(change.subscription_id)
        if not plans.is_done(sub, change):
            now = int(datetime.now(UTC).timestamp())
            await plans.change_plan(self._api, sub, change, at=now)
            sub = await self._subscription(change.subscription_id)
        return parse_subscription(sub, await self._plan(mini_id(sub.get("plan"))))

    async def charge_saved_card(
        self, customer_id: str, amount: Money, *, description: str, idempotency_key: str
    ) -> Charge:
        """A one-off purchase (`POST /purchases`, one charge line) collected from the
        account's billing info. Its invoice carries our reference: a retry returns that
        invoice's payment instead of charging again."""
        if amount.minor <= 0:
            raise GatewayError(ErrorCode.rejected, "a charge must be more than zero", gateway=NAME)
        value = amount_to_recurly(amount)
        account = await self._account(customer_id)
        account_id = str(account["id"])
        found = await self._our_charge(account_id, idempotency_key)
        if found is not None:
            return found
        body: Json = {
            "currency": amount.currency,
            "account": {"code": account["code"]},
            "collection_method": "automatic",
            "customer_notes": reference_note("Charge", idempotency_key),
            "line_items": [{
                "type": "charge", "currency": amount.currency, "unit_amount": value,
                "quantity": 1, "description": description.strip()[:255] or "One-time charge",
            }],
        }  # fmt: skip
        what = f"{amount.format()} to account {account_id}"
        try:
            collection = await self._api.write(
                lambda c: c.create_purchase(body), verb="charge", what=what
            )
        except GatewayError as exc:
            if exc.code not in _UNKNOWN_OUTCOME:
                raise
            found = await self._our_charge(account_id, idempotency_key)  # did it go through?
            if found is None:
                raise
            return found
        invoice = collection.get("charge_invoice") or {}
        charge = _payment_of(invoice)
        if charge is None:
            raise GatewayError(
                ErrorCode.invalid_state,
                f"Recurly made invoice {invoice.get('number')} for {what} but no payment: "
                "check it in Recurly",
                gateway=NAME,
            )
        self._remember(invoice)
        return charge

    async def _our_charge(self, account_id: str, key: str) -> Charge | None:
        invoices = await self._api.items(
            lambda c: c.list_account_invoices(account_id, **listing(type="charge")),
            f"invoices of account {account_id}",
            self.max_listed,
        )
        ours = next((i for i in invoices if has_reference(i, key)), None)
        return _payment_of(ours) if ours is not None else None

    # --- the billing index ---------------------------------------------------------------------

    async def sync_page(
        self, kind: str, cursor: str | None, *, since: datetime | None, limit: int
    ) -> SyncPage:
        return await sync.page(self._api, kind, cursor, since=since, limit=limit, plan=self._plan)

    # --- not offered, each with its reason -----------------------------------------------

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        raise _unsupported(Capability.capture, _HOLDS)

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        raise _unsupported(Capability.void, _HOLDS)

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        raise _unsupported(
            Capability.send_invoice, "Recurly e-mails its invoices itself, by its own settings"
        )

    # --- coupons -----------------------------------------------------------------------------

    async def apply_coupon(self, target_id: str, code: str, *, idempotency_key: str) -> str:
        """Redeem a coupon (by its code) on an account, or on one of its subscriptions."""
        code = code.strip()
        if not code or not target_id.strip():
            raise GatewayError(
                ErrorCode.rejected, "a coupon code and a customer are needed", gateway=NAME
            )
        sub = (
            await self._api.find(
                lambda c: c.get_subscription(target_id), f"subscription {target_id}"
            )
            if is_object_id(target_id)
            else None
        )
        if sub is not None:
            account_id = mini_id(sub.get("account")) or ""
        else:
            account = await self._api.find(
                lambda c: c.get_account(target_id), f"account {target_id}"
            )
            if account is None:
                raise GatewayError(
                    ErrorCode.not_found,
                    f"Recurly has no account or subscription {target_id}",
                    gateway=NAME,
                )
            account_id = str(account["id"])
        coupon = await self._api.find(lambda c: c.get_coupon(f"code-{code}"), f"coupon {code}")
        if coupon is None:
            raise GatewayError(ErrorCode.not_found, f"Recurly has no coupon {code}", gateway=NAME)
        if coupon.get("state") != "redeemable":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"coupon {code} is {coupon.get('state')}: it can no longer be redeemed",
                gateway=NAME,
                raw_code=str(coupon.get("state")),
            )
        on_subscription = coupon.get("redemption_resource") == "subscription"
        if on_subscription and sub is None:
            raise GatewayError(
                ErrorCode.invalid_state,
                f"coupon {code} goes on a subscription: apply it to one of the customer's "
                "subscriptions",
                gateway=NAME,
            )
        currency = await self._currency_of(account_id, sub)
        fixed = fixed_currencies(coupon)
        if fixed and currency not in fixed:
            raise GatewayError(
                ErrorCode.currency_mismatch,
                f"coupon {code} has amounts in {', '.join(fixed)}, not in "
                f"{currency or 'the customer’s currency (no live subscription says it)'}",
                gateway=NAME,
            )
        subscription_id = str(sub["id"]) if sub is not None and on_subscription else None
        described = describe_coupon(coupon, currency)
        if await self._redeemed(account_id, str(coupon["id"]), subscription_id):
            return described  # applying twice is applying once
        body: Json = {"coupon_id": coupon["id"]}
        if currency:
            body["currency"] = currency
        if subscription_id:
            body["subscription_id"] = subscription_id
        try:
            await self._api.write(
                lambda c: c.create_coupon_redemption(account_id, body),
                verb="apply",
                what=f"coupon {code} to account {account_id}",
            )
        except GatewayError as exc:
            # Lost answer, or "already redeemed" by a concurrent run of the same request.
            if not await self._redeemed(account_id, str(coupon["id"]), subscription_id):
                raise exc from None
        return described

    async def coupon(self, code: str, *, currency: str | None = None) -> Coupon:
        found = await self._api.find(lambda c: c.get_coupon(f"code-{code}"), f"coupon {code}")
        if found is None:
            raise GatewayError(ErrorCode.not_found, f"Recurly has no coupon {code}", gateway=NAME)
        if found.get("state") != "redeemable":
            raise GatewayError(
                ErrorCode.invalid_state,
                f"coupon {code} is {found.get('state')}: it can no longer be redeemed",
                gateway=NAME,
            )
        return coupon_of(found, currency)

    async def precheck_coupon(self, target_id: str, *, subscription: bool, remove: bool) -> None:
        if remove and subscription:
            raise GatewayError(
                ErrorCode.rejected,
                "Recurly removes coupons from an account, not from one subscription: name "
                "the customer's account instead",
                gateway=NAME,
            )

    async def remove_discount(self, target_id: str, *, idempotency_key: str) -> str:
        """End the account's active coupon redemptions, one DELETE each, re-reading between:
        Recurly has no idempotency key, and what is gone already is not removed twice."""
        account = await self._api.find(lambda c: c.get_account(target_id), f"account {target_id}")
        if account is None:
            raise GatewayError(
                ErrorCode.not_found,
                f"Recurly removes coupons from an account: no account {target_id} (a "
                "subscription's coupon comes off its account)",
                gateway=NAME,
            )
        account_id = str(account["id"])
        for _ in range(self.max_listed):
            if not await self._active_redemptions(account_id):
                break
            try:
                await self._api.write(
                    lambda c: c.remove_coupon_redemption(account_id),
                    verb="remove",
                    what=f"the coupon of account {account_id}",
                )
            except GatewayError as exc:
                if exc.code != ErrorCode.not_found:  # 404: none left, as a retry finds
                    raise
        return account_id

    async def _active_redemptions(self, account_id: str) -> list[Json]:
        return await self._api.items(
            lambda c: c.list_active_coupon_redemptions(account_id),
            f"coupons of account {account_id}",
            self.max_listed,
        )

    async def _currency_of(self, account_id: str, sub: Mapping[str, Any] | None) -> str | None:
        if sub is not None:
            return str(sub["currency"])
        live = await self._api.items(
            lambda c: c.list_account_subscriptions(account_id, **listing(state="live")),
            f"subscriptions of account {account_id}",
            self.max_listed,
        )
        currencies = {str(s["currency"]) for s in live if s.get("currency")}
        return currencies.pop() if len(currencies) == 1 else None

    async def _redeemed(self, account_id: str, coupon_id: str, subscription_id: str | None) -> bool:
        active = await self._active_redemptions(account_id)
        return any(
            (r.get("coupon") or {}).get("id") == coupon_id
            and (subscription_id is None or r.get("subscription_id") == subscription_id)
            for r in active
        )

    # --- the card update page ------------------------------------------------------------------

    async def card_update_url(self, customer_id: str, *, return_url: str) -> str:
        """Recurly's hosted page where the customer updates their card (Hosted Account
        Management must be on). Recurly's page has no way back to `return_url`."""
        base = self.site_url()
        if base is None:
            raise GatewayError(
                ErrorCode.not_configured,
                "set recurly.subdomain (yourcompany of yourcompany.recurly.com) to send "
                "customers to Recurly's card update page",
                gateway=NAME,
            )
        if not customer_id.strip():
            raise GatewayError(ErrorCode.not_found, "Recurly has no account ''", gateway=NAME)
        account = await self._api.read(
            lambda c: c.get_account(customer_id), f"account {customer_id}"
        )
        token = account.get("hosted_login_token")
        if not token:
            raise GatewayError(
                ErrorCode.not_configured,
                f"Recurly gave no hosted login token for account {customer_id}: turn on "
                "Hosted Account Management in Recurly",
                gateway=NAME,
            )
        return f"{base}/account/billing_info/edit?ht={quote(str(token), safe='')}"

    # --- webhooks ------------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        secret = self.settings.webhook_secret
        notification = verify(
            body,
            headers,
            secret.get_secret_value() if secret is not None else None,
            self.settings.webhook_tolerance,
        )
        obj: Json | None = None
        target = to_read(notification)
        if target is not None:
            kind, object_id = target
            obj = await self._read_for_event(kind, object_id)
            if (
                obj is not None
                and notification.get("event_type") == "refunded"
                and obj.get("type") in PAYMENT_TYPES
            ):
                # The notification named the payment, not its refund: every refund of it is
                # an event (each its own, so one already processed is a duplicate).
                refunds = await self._refunds_of(obj)
                if refunds:
                    refunds.sort(key=lambda r: (str(r.get("created_at") or ""), str(r["id"])))
                    return [parse_event(notification, r) for r in refunds]
        self._remember(obj)
        return [parse_event(notification, obj)]

    async def _read_for_event(self, kind: str, object_id: str) -> Json | None:
        if not is_object_id(object_id):
            return None  # no object of Recurly's: the event is recorded as sent
        if kind == "transaction":
            return await self._api.find(
                lambda c: c.get_transaction(object_id), f"transaction {object_id}"
            )
        if kind == "invoice":
            return await self._api.find(lambda c: c.get_invoice(object_id), f"invoice {object_id}")
        return await self._api.find(
            lambda c: c.get_subscription(object_id), f"subscription {object_id}"
        )


async def _nothing() -> None:
    return None


def _payment_of(invoice: Mapping[str, Any]) -> Charge | None:
    """The successful payment of an invoice we made, as our charge."""
    payment = next(
        (t for t in invoice.get("transactions") or []
         if t.get("type") in PAYMENT_TYPES and t.get("status") == "success"),
        None,
    )  # fmt: skip
    return parse_charge(payment, (), invoice) if payment is not None else None


def _unsupported(capability: Capability, why: str) -> Unsupported:
    """Unsupported, as every gateway says it, with Recurly's reason after it."""
    refused = Unsupported(NAME, capability)
    refused.message = f"{refused.message}: {why}"
    refused.args = (refused.message,)
    return refused
