"""Braintree transport: the official SDK, off the event loop, with its errors in our words.

The `braintree` SDK is synchronous (requests under XML), so every call runs in a
small thread pool of our own: bounded, its threads keep their HTTP sessions, and
it is shut down with the gateway. Reads (finds and searches) are retried on
transient failures; writes are sent once, since Braintree's REST API honours no
idempotency key (`api_request_key` is at-most-once on GraphQL only): the gateway
reads back what a write did before anything is sent again. Braintree's answers
become our GatewayError family here, and nowhere else.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import braintree
from braintree.exceptions.authentication_error import AuthenticationError
from braintree.exceptions.authorization_error import AuthorizationError
from braintree.exceptions.gateway_timeout_error import GatewayTimeoutError
from braintree.exceptions.http.connection_error import ConnectionError as SDKConnectionError
from braintree.exceptions.http.timeout_error import ConnectTimeoutError
from braintree.exceptions.http.timeout_error import TimeoutError as SDKTimeoutError
from braintree.exceptions.invalid_signature_error import InvalidSignatureError
from braintree.exceptions.not_found_error import NotFoundError
from braintree.exceptions.request_timeout_error import RequestTimeoutError
from braintree.exceptions.server_error import ServerError
from braintree.exceptions.service_unavailable_error import ServiceUnavailableError
from braintree.exceptions.too_many_requests_error import TooManyRequestsError
from braintree.exceptions.unexpected_error import UnexpectedError
from braintree.exceptions.upgrade_required_error import UpgradeRequiredError

from bot.gateways.base import ErrorCode, GatewayError, WebhookRejected
from bot.gateways.braintree.mapping import NAME, error_code, field
from bot.gateways.calls import (
    Retryable,
    SdkThreads,
    Unreachable,
    failure_words,
    optional,
    retried,
)
from bot.settings import BraintreeSettings

T = TypeVar("T")
SDK = braintree.BraintreeGateway
PROVIDER = "Braintree"
CONCURRENT_CALLS = 8
CREDENTIALS_HINT = (
    "check braintree.merchant_id, braintree.public_key and braintree.private_key, and that "
    "they belong to the configured environment (sandbox or production)"
)
_TRANSIENT = frozenset({ErrorCode.unavailable, ErrorCode.rate_limited, ErrorCode.timeout})


def environment(settings: BraintreeSettings) -> braintree.Environment:
    """Braintree's sandbox or production, or the `base_url` of a local emulator."""
    if settings.base_url is None:
        live = settings.environment == "production"
        return braintree.Environment.Production if live else braintree.Environment.Sandbox
    url = urlsplit(str(settings.base_url))
    if url.path not in ("", "/") or url.query or not url.hostname:
        raise GatewayError(
            ErrorCode.rejected,
            "braintree.base_url takes scheme://host[:port] only, without a path",
            gateway=NAME,
        )
    port = url.port or (443 if url.scheme == "https" else 80)
    # The SDK speaks HTTPS on port 443 and plain HTTP on any other port.
    if (url.scheme == "https") != (port == 443):
        raise GatewayError(
            ErrorCode.rejected,
            "braintree.base_url: the Braintree SDK uses HTTPS exactly when the port is 443",
            gateway=NAME,
        )
    base = f"{url.scheme}://{url.hostname}:{port}"
    return braintree.Environment("custom", url.hostname, str(port), base, port == 443, None)


def _failure(exc: Exception, verb: str, what: str) -> GatewayError:
    """An SDK exception in our words (never with a key or a payload in it)."""
    kind = type(exc).__name__
    if isinstance(exc, AuthenticationError):
        return GatewayError(
            ErrorCode.rejected,
            f"Braintree rejected our API keys: {CREDENTIALS_HINT}",
            gateway=NAME,
            raw_code="401",
        )
    if isinstance(exc, AuthorizationError):
        return GatewayError(
            ErrorCode.rejected,
            f"Braintree refused permission to {verb} {what}: give the API user's role that right",
            gateway=NAME,
            raw_code="403",
        )
    if isinstance(exc, NotFoundError):
        return _said(ErrorCode.not_found, "404", verb, what)
    if isinstance(exc, TooManyRequestsError):
        return _said(ErrorCode.rate_limited, "429", verb, what)
    if isinstance(exc, UpgradeRequiredError):
        return GatewayError(
            ErrorCode.rejected,
            "Braintree refuses this SDK version as too old: upgrade the braintree package",
            gateway=NAME,
            raw_code="426",
        )
    if isinstance(exc, ConnectTimeoutError | SDKConnectionError):
        return Unreachable(False, kind).error(PROVIDER, verb, what, gateway=NAME, raw_code=kind)
    if isinstance(exc, SDKTimeoutError | RequestTimeoutError | GatewayTimeoutError):
        return Unreachable(True, kind).error(PROVIDER, verb, what, gateway=NAME, raw_code=kind)
    if isinstance(exc, ServerError | ServiceUnavailableError | UnexpectedError):
        return _said(ErrorCode.unavailable, kind, verb, what)
    raise exc


def _said(code: ErrorCode, raw_code: str, verb: str, what: str) -> GatewayError:
    words = failure_words(PROVIDER, code, verb, what, status=raw_code)
    return GatewayError(code, words, gateway=NAME, raw_code=raw_code)


def refusal(result: Any, verb: str, what: str) -> GatewayError:
    """A validation ErrorResult (HTTP 422) as a GatewayError keeping Braintree's code."""
    errors = field(result, "errors")
    deep = list(errors.deep_errors) if errors is not None else []
    first = deep[0] if deep else None
    raw_code = str(first.code) if first is not None else None
    raw_message = (field(first, "message") if first is not None else None) or field(
        result, "message"
    )
    transaction = field(result, "transaction")
    if raw_code is None and field(transaction, "status") == "processor_declined":
        raw_code = str(field(transaction, "processor_response_code") or "processor_declined")
        code = ErrorCode.card_declined
    else:
        code = error_code(raw_code)
    return GatewayError(
        code,
        f"Braintree refused to {verb} {what}: {raw_message or raw_code or 'no reason given'}",
        gateway=NAME,
        raw_code=raw_code,
        raw_message=raw_message,
    )


class BraintreeAPI:
    """One Braintree merchant: the SDK, its thread pool, and every call's retries.

    `backoff` is the first retry's mean pause in seconds (doubling after).
    """

    def __init__(self, settings: BraintreeSettings, *, backoff: float = 0.5) -> None:
        if not settings.merchant_id or not settings.public_key or settings.private_key is None:
            raise GatewayError(
                ErrorCode.rejected,
                "Braintree needs braintree.merchant_id, braintree.public_key and "
                "braintree.private_key",
                gateway=NAME,
            )
        self.settings = settings
        self.backoff = backoff
        config = braintree.Configuration(
            environment=environment(settings),
            merchant_id=settings.merchant_id,
            public_key=settings.public_key,
            private_key=settings.private_key.get_secret_value(),
            timeout=settings.timeout,
            wrap_http_exceptions=True,  # requests' exceptions arrive as the SDK's own
        )
        self.sdk = braintree.BraintreeGateway(config)
        self._threads = SdkThreads("braintree", CONCURRENT_CALLS)

    async def close(self) -> None:
        self._threads.close()

    async def _run(self, call: Callable[[SDK], T]) -> T:
        return await self._threads.run(call, self.sdk)

    async def read(self, call: Callable[[SDK], T], *, verb: str, what: str) -> T:
        """A read (find or search), retried on transient failures."""

        async def attempt() -> T:
            try:
                return await self._run(call)
            except Exception as exc:
                error = _failure(exc, verb, what)
                if error.code in _TRANSIENT:
                    raise Retryable(error) from None
                raise error from None

        return await retried(attempt, retries=self.settings.max_retries, backoff=self.backoff)

    async def optional(self, call: Callable[[SDK], T], *, what: str) -> T | None:
        """A find, or None where Braintree has no such object."""
        return await optional(self.read(call, verb="read", what=what))

    async def write(self, call: Callable[[SDK], Any], *, verb: str, what: str) -> Any:
        """A write, sent once: its SuccessfulResult, or Braintree's refusal as a GatewayError.

        A timeout or a failure to answer leaves the outcome unknown; the caller reads back.
        """
        try:
            result = await self._run(call)
        except Exception as exc:
            raise _failure(exc, verb, what) from None
        if not field(result, "is_success"):
            raise refusal(result, verb, what)
        return result

    async def notification(self, signature: str, payload: str) -> Any:
        """A webhook notification the SDK verified (`bt_signature` over `bt_payload`)."""

        def parse(sdk: SDK) -> Any:
            return sdk.webhook_notification.parse(signature, payload)

        try:
            return await self._run(parse)
        except InvalidSignatureError as exc:
            raise WebhookRejected(NAME, f"signature refused: {exc}") from None
        except Exception as exc:  # a signed payload Braintree's own parser cannot read
            raise WebhookRejected(NAME, f"unreadable notification ({type(exc).__name__})") from None

    # --- the calls the gateway makes ---------------------------------------------------------

    async def transaction(self, transaction_id: str) -> Any | None:
        return await self.optional(
            lambda sdk: sdk.transaction.find(transaction_id), what=f"transaction {transaction_id}"
        )

    async def customer(self, customer_id: str) -> Any | None:
        return await self.optional(
            lambda sdk: sdk.customer.find(customer_id), what=f"customer {customer_id}"
        )

    async def subscription(self, subscription_id: str) -> Any | None:
        return await self.optional(
            lambda sdk: sdk.subscription.find(subscription_id),
            what=f"subscription {subscription_id}",
        )

    async def dispute(self, dispute_id: str) -> Any | None:
        return await self.optional(
            lambda sdk: sdk.dispute.find(dispute_id), what=f"dispute {dispute_id}"
        )

    async def payment_method(self, token: str) -> Any | None:
        return await self.optional(
            lambda sdk: sdk.payment_method.find(token), what=f"payment method {token}"
        )

    async def plan(self, plan_id: str) -> Any | None:
        return await self.optional(lambda sdk: sdk.plan.find(plan_id), what=f"plan {plan_id}")

    async def merchant_account(self, account_id: str) -> Any:
        return await self.read(
            lambda sdk: sdk.merchant_account.find(account_id),
            verb="read",
            what=f"merchant account {account_id}",
        )

    async def customers_by_email(self, email: str, cap: int) -> list[Any]:
        """Stored customers with this e-mail (Braintree's customer search)."""

        def search(sdk: SDK) -> list[Any]:
            found = sdk.customer.search(braintree.CustomerSearch.email == email)
            return list(itertools.islice(found.items, cap))

        return await self.read(search, verb="search", what=f"customers with e-mail {email}")

    async def transactions_of(
        self, *, cap: int, customer_id: str | None = None, customer_email: str | None = None
    ) -> list[Any]:
        """A customer's transactions, sales and refunds, newest first, at most `cap`."""

        def search(sdk: SDK) -> list[Any]:
            search = braintree.TransactionSearch
            criteria = (
                search.customer_id == customer_id
                if customer_id is not None
                else search.customer_email == customer_email
            )
            # Searches page IDs first and fetch the objects in batches: stop at the cap.
            return list(itertools.islice(sdk.transaction.search(criteria).items, cap))

        who = f"customer {customer_id}" if customer_id is not None else customer_email
        return await self.read(search, verb="search", what=f"transactions of {who}")

    async def refund(self, transaction_id: str, amount: str, order_id: str) -> Any:
        result = await self.write(
            lambda sdk: sdk.transaction.refund(
                transaction_id, {"amount": amount, "order_id": order_id}
            ),
            verb="refund",
            what=f"transaction {transaction_id}",
        )
        return result.transaction

    async def void(self, transaction_id: str) -> Any:
        result = await self.write(
            lambda sdk: sdk.transaction.void(transaction_id),
            verb="void",
            what=f"transaction {transaction_id}",
        )
        return result.transaction

    async def submit_for_settlement(self, transaction_id: str, amount: str | None) -> Any:
        result = await self.write(
            lambda sdk: sdk.transaction.submit_for_settlement(transaction_id, amount),
            verb="capture",
            what=f"transaction {transaction_id}",
        )
        return result.transaction

    async def sale(self, params: dict[str, Any]) -> Any:
        """`Transaction.sale`, sent once: its transaction, or the refusal (a decline)."""
        result = await self.write(
            lambda sdk: sdk.transaction.sale(params), verb="charge", what="the saved card"
        )
        return result.transaction

    async def transactions_by_order(self, order_id: str) -> list[Any]:
        """Transactions carrying this order ID: how a sale of ours is read back."""

        def search(sdk: SDK) -> list[Any]:
            found = sdk.transaction.search(braintree.TransactionSearch.order_id == order_id)
            return list(itertools.islice(found.items, 10))

        return await self.read(search, verb="search", what=f"transactions of order {order_id}")

    async def cancel_subscription(self, subscription_id: str) -> Any:
        result = await self.write(
            lambda sdk: sdk.subscription.cancel(subscription_id),
            verb="cancel",
            what=f"subscription {subscription_id}",
        )
        return result.subscription

    async def end_after_cycle(self, subscription_id: str, cycle: int) -> Any:
        """Let a subscription run out after billing cycle `cycle`: Braintree's end of term."""
        result = await self.write(
            lambda sdk: sdk.subscription.update(
                subscription_id, {"never_expires": False, "number_of_billing_cycles": cycle}
            ),
            verb="end",
            what=f"subscription {subscription_id} after this billing cycle",
        )
        return result.subscription
