"""The Recurly gateway, one job per module.

`client` (the official `recurly` client on our own connection, exact JSON, retries,
errors), `mapping` (pure: Recurly's JSON and money rules to our models), `gateway`
(the `RecurlyGateway` class), `webhooks` (signature and events). Nothing is imported
here, so the pure modules load without the SDK.
"""
