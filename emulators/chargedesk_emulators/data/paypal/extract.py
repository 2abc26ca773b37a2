"""Regenerate the pruned PayPal OpenAPI descriptions beside this file.

Each output keeps only the operations the emulator serves, and the components
they reference, from PayPal's published descriptions (Apache-2.0, see LICENSE
and SOURCE). Run: `python emulators/chargedesk_emulators/data/paypal/extract.py /path/to/specs/paypal`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chargedesk_emulators.openapi_subset import components, referenced

HERE = Path(__file__).resolve().parent
MODIFIED = (
    "Pruned by ChargeDesk (emulators/chargedesk_emulators/data/paypal/extract.py) to the operations its test "
    "emulator serves, with the corrections listed there; original: "
    "paypal/paypal-rest-api-specifications (see SOURCE), Apache-2.0 (see LICENSE)."
)
SERVERS = [
    {"url": "https://api-m.sandbox.paypal.com", "description": "PayPal Sandbox Environment"},
    {"url": "https://api-m.paypal.com", "description": "PayPal Live Environment"},
]
USED: dict[str, dict[str, list[str]]] = {
    "payments_payment_v2": {
        "/v2/payments/captures/{capture_id}": ["get"],
        "/v2/payments/captures/{capture_id}/refund": ["post"],
        "/v2/payments/refunds/{refund_id}": ["get"],
        "/v2/payments/authorizations/{authorization_id}": ["get"],
        "/v2/payments/authorizations/{authorization_id}/capture": ["post"],
        "/v2/payments/authorizations/{authorization_id}/void": ["post"],
    },
    "checkout_orders_v2": {
        "/v2/checkout/orders": ["post"],
        "/v2/checkout/orders/{id}": ["get", "patch"],
        "/v2/checkout/orders/{id}/capture": ["post"],
    },
    "billing_subscriptions_v1": {
        "/v1/billing/subscriptions/{id}": ["get"],
        "/v1/billing/subscriptions/{id}/cancel": ["post"],
        "/v1/billing/subscriptions/{id}/suspend": ["post"],
        "/v1/billing/subscriptions/{id}/activate": ["post"],
    },
    "reporting_transactions_v1": {"/v1/reporting/transactions": ["get"]},
    "invoicing_v2": {
        "/v2/invoicing/search-invoices": ["post"],
        "/v2/invoicing/invoices/{invoice_id}": ["get"],
        "/v2/invoicing/invoices/{invoice_id}/send": ["post"],
    },
    "notifications_webhooks_v1": {"/v1/notifications/verify-webhook-signature": ["post"]},
    "customer_disputes_v1": {
        "/v1/customer/disputes": ["get"],
        "/v1/customer/disputes/{id}": ["get"],
        "/v1/customer/disputes/{id}/accept-claim": ["post"],
        "/v1/customer/disputes/{id}/provide-evidence": ["post"],
    },
}


def _drop_examples(node: Any) -> Any:
    # Media-type examples point at components/examples, which the emulator never needs.
    if isinstance(node, dict):
        return {k: _drop_examples(v) for k, v in node.items() if k != "examples"}
    if isinstance(node, list):
        return [_drop_examples(v) for v in node]
    return node


def prune(spec: dict[str, Any], used: dict[str, list[str]]) -> dict[str, Any]:
    paths = {
        path: {
            key: _drop_examples(value)
            for key, value in spec["paths"][path].items()
            if key in methods or key == "parameters"
        }
        for path, methods in used.items()
    }
    found = referenced(spec, paths, load=_drop_examples)
    schemes = spec["components"].get("securitySchemes")
    also = {"securitySchemes": schemes} if schemes is not None else None
    return {
        "openapi": spec["openapi"],
        # Apache-2.0 asks modified files to say so.
        "info": {**spec["info"], "x-modified": MODIFIED},
        # The reporting description's server repeats /v1/reporting; every copy uses the hosts.
        "servers": SERVERS,
        "paths": paths,
        "components": components(found, also),
    }


def correct(name: str, pruned: dict[str, Any]) -> None:
    """Where a description contradicts what PayPal sends, follow PayPal (and say so here)."""
    if name == "reporting_transactions_v1":
        # Rows of type SUB carry the subscription ID (I-...), which has a dash.
        info = pruned["components"]["schemas"]["transaction_info"]["properties"]
        info["paypal_reference_id"]["pattern"] = "^[a-zA-Z0-9-]*$"
    if name == "customer_disputes_v1":
        # The states' enum stands beside the parameter's schema, which OpenAPI forbids, and
        # would refuse the comma-separated list the parameter takes: the pattern stays.
        parameters = pruned["components"]["parameters"]
        del parameters["dispute_state"]["enum"]
        # Defaults in words ("Current date and time") that their own patterns refuse.
        for parameter in ("start_time", "next_page_token"):
            del parameters[parameter]["schema"]["default"]
        # Carrier names repeat (`ZA_FASTWAY` twice); an enum's items must be unique.
        carrier = pruned["components"]["schemas"]["tracking_info"]["properties"]["carrier_name"]
        carrier["enum"] = list(dict.fromkeys(carrier["enum"]))


def main(source: Path) -> None:
    for name, used in USED.items():
        spec = json.loads((source / f"{name}.json").read_text())
        pruned = prune(spec, used)
        correct(name, pruned)
        out = HERE / f"{name}.json"
        out.write_text(json.dumps(pruned, indent=1, sort_keys=False) + "\n")
        print(f"{out.name}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
