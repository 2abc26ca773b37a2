"""The Braintree gateway, one job per module.

`client` (the official SDK off the event loop, its errors in our words),
`mapping` (pure: Braintree's objects and currency rules to our models),
`gateway` (the `BraintreeGateway` class), `webhooks` (verification and events).
"""

from bot.gateways.braintree.gateway import BraintreeGateway

__all__ = ["BraintreeGateway"]
