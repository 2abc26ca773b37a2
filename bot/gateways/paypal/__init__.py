"""The PayPal gateway, one job per module.

`client` (the SDK and httpx, OAuth, retries, errors), `mapping` (pure: PayPal's JSON
and currency rules to our models), `gateway` (the `PayPalGateway` class),
`webhooks` (verification and events), `disputes` (Customer Disputes v1), `orders` (pay
links: Orders v2 checkouts, captured once approved), `sync` (the billing index's pages).
"""

from bot.gateways.paypal.gateway import PayPalGateway

__all__ = ["PayPalGateway"]
