"""Regenerate the pruned Recurly OpenAPI description beside this file.

It keeps only the operations the emulator serves, and the components they
reference, from Recurly's published description of API v2021-02-25 (MIT, see
LICENSE and SOURCE), as JSON. Run (PyYAML needed):
`python emulators/chargedesk_emulators/data/recurly/extract.py /path/to/specs/recurly/api.yaml`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from chargedesk_emulators.openapi_subset import components, referenced

HERE = Path(__file__).resolve().parent
MODIFIED = (
    "Pruned by ChargeDesk (emulators/chargedesk_emulators/data/recurly/extract.py) to the "
    "operations its test emulator serves; original: recurly/recurly-client-python "
    "openapi/api.yaml (see SOURCE), MIT (see LICENSE)."
)
USED: dict[str, list[str]] = {
    "/accounts": ["get"],
    "/transactions": ["get"],
    "/invoices": ["get"],
    "/subscriptions": ["get", "post"],
    "/subscriptions/{subscription_id}/change": ["post"],
    "/subscriptions/{subscription_id}/change/preview": ["post"],
    "/purchases": ["post"],
    "/accounts/{account_id}": ["get"],
    "/accounts/{account_id}/transactions": ["get"],
    "/accounts/{account_id}/invoices": ["get"],
    "/accounts/{account_id}/subscriptions": ["get"],
    "/accounts/{account_id}/coupon_redemptions/active": ["get", "post", "delete"],
    "/transactions/{transaction_id}": ["get"],
    "/invoices/{invoice_id}": ["get"],
    "/invoices/{invoice_id}/related_invoices": ["get"],
    "/invoices/{invoice_id}/refund": ["post"],
    "/subscriptions/{subscription_id}": ["get", "delete"],
    "/subscriptions/{subscription_id}/cancel": ["put"],
    "/subscriptions/{subscription_id}/pause": ["put"],
    "/subscriptions/{subscription_id}/resume": ["put"],
    "/coupons/{coupon_id}": ["get"],
    "/plans/{plan_id}": ["get"],
}


def _operation(value: dict[str, Any]) -> dict[str, Any]:
    # Code samples are most of the file and nothing a validator reads.
    return {k: v for k, v in value.items() if not k.startswith("x-code-samples")}


def prune(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {
        path: {
            key: _operation(value) if key in methods else value
            for key, value in spec["paths"][path].items()
            if key in methods or key == "parameters"
        }
        for path, methods in USED.items()
    }
    found = referenced(spec, paths)
    info = {k: v for k, v in spec["info"].items() if k != "description"}
    return {
        "openapi": spec["openapi"],
        "info": {**info, "x-modified": MODIFIED},
        "servers": spec["servers"],
        "security": spec["security"],
        "paths": paths,
        "components": components(found, {"securitySchemes": spec["components"]["securitySchemes"]}),
    }


def _enum_defaults(node: Any, fixed: list[str], where: str = "") -> None:
    """Drop defaults that their own enum refuses (InvoiceStateEnum's `all`): the
    description would not load into a validator otherwise."""
    if isinstance(node, dict):
        enum, default = node.get("enum"), node.get("default")
        if isinstance(enum, list) and "default" in node and default not in enum:
            del node["default"]
            fixed.append(where)
        for key, value in node.items():
            _enum_defaults(value, fixed, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _enum_defaults(value, fixed, f"{where}/{index}")


def _js_patterns(node: Any, fixed: list[str], where: str = "") -> None:
    """Patterns written as JavaScript literals (`/^[a-z0-9_+-]+$/i`, plan and add-on codes)
    as the regular expressions they mean: as written, no code would match them."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if (
            isinstance(pattern, str)
            and pattern.startswith("/")
            and pattern.rstrip("i").endswith("/")
        ):
            flags = "(?i)" if pattern.endswith("i") else ""
            node["pattern"] = flags + pattern[1 : pattern.rstrip("i").rindex("/")]
            fixed.append(where)
        for key, value in node.items():
            _js_patterns(value, fixed, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _js_patterns(value, fixed, f"{where}/{index}")


def correct(pruned: dict[str, Any]) -> list[str]:
    """Where the description contradicts itself or what Recurly sends, follow Recurly and
    say where (printed by `main`)."""
    fixed: list[str] = []
    _enum_defaults(pruned, fixed)
    _js_patterns(pruned, fixed)
    # The last page of a list says `"next": null` (Recurly's own client tests send that).
    for name, schema in pruned["components"]["schemas"].items():
        paging = schema.get("properties", {}).get("next")
        if name.endswith("List") and paging is not None:
            paging["nullable"] = True
            fixed.append(f"/components/schemas/{name}/properties/next")
    return fixed


def main(source: Path) -> None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(source.read_text(), Loader=loader)  # a safe loader: no objects built
    out = HERE / "api.json"
    pruned = prune(spec)
    for where in correct(pruned):
        print(f"corrected: {where}")
    out.write_text(json.dumps(pruned, indent=1, default=str) + "\n")
    print(f"{out.name}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
