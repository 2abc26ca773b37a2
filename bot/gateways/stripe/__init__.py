"""The Stripe gateway, one job per module.

`client` (the SDK, auth, retries, errors), `mapping` (pure: Stripe's JSON and
currency rules to our models), `gateway` (the `StripeGateway` class), `webhooks`
(signature and events).
"""

from bot.gateways.stripe.client import STRIPE_API_VERSION
from bot.gateways.stripe.gateway import StripeGateway

__all__ = ["STRIPE_API_VERSION", "StripeGateway"]
