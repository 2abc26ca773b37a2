"""What each built-in gateway can do, as a Markdown table generated from the gateway classes.

Rows are the `Capability` values with their labels; columns are the gateways;
a cell says yes or no, or the gateway's own note where it declares a limit
(`Gateway.limits`). `python -m bot.gateways.matrix` prints the table;
`--write README.md` puts it between the README's capability-matrix markers.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.gateways.base import Capability, Gateway
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.gateways.stripe.gateway import StripeGateway
from bot.gateways.woocommerce.gateway import WooCommerceGateway

BUILT_IN: tuple[type[Gateway], ...] = (
    LedgerGateway, StripeGateway, PayPalGateway, BraintreeGateway, RecurlyGateway, WooCommerceGateway,
)  # fmt: skip
START = "<!-- capability-matrix:start"
END = "<!-- capability-matrix:end -->"
_BETWEEN = re.compile(rf"({re.escape(START)}[^\n]*-->\n)(.*?)({re.escape(END)})", re.S)


def cell(gateway: type[Gateway], capability: Capability) -> str:
    """`yes`, `no`, or the gateway's note on how far it goes."""
    note = gateway.limits.get(capability)
    if capability not in gateway.capabilities:
        return f"no ({note})" if note else "no"
    return note or "yes"


def table(gateways: Sequence[type[Gateway]] = BUILT_IN) -> str:
    """The capability matrix as a Markdown table (ending with a newline)."""
    header = ["Capability", *(f"`{g.name}`" for g in gateways)]
    rows = [header, ["---"] * len(header)]
    rows += [[c.label, *(cell(g, c) for g in gateways)] for c in Capability]
    return "".join("| " + " | ".join(row) + " |\n" for row in rows)


def in_readme(text: str) -> str | None:
    """What stands between the markers of a README, None without both markers."""
    found = _BETWEEN.search(text)
    return found.group(2) if found else None


def with_table(text: str, generated: str) -> str:
    """The README text with `generated` between its markers (which must be there)."""
    if in_readme(text) is None:
        raise ValueError(f"no {START} ... {END} markers in the README")
    return _BETWEEN.sub(lambda m: m.group(1) + generated + m.group(3), text, count=1)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table, or write it into a README (`--write`)."""
    parser = argparse.ArgumentParser(prog="python -m bot.gateways.matrix", description=__doc__)
    parser.add_argument("--write", type=Path, metavar="README", help="replace the README's table")
    args = parser.parse_args(argv)
    generated = table()
    if args.write is None:
        sys.stdout.write(generated)
        return 0
    args.write.write_text(with_table(args.write.read_text(), generated))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
