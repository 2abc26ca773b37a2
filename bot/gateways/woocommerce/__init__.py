"""The WooCommerce gateway, one job per module: one store's REST API v3 over httpx.

`client` (httpx, Basic auth over HTTPS or OAuth 1.0a over plain HTTP, paging, retries,
errors), `mapping` (pure: WooCommerce's JSON and money to our models), `gateway` (the
`WooCommerceGateway` class), `webhooks` (`X-WC-Webhook-Signature` and events).
"""

from bot.gateways.woocommerce.gateway import WooCommerceGateway

__all__ = ["WooCommerceGateway"]
