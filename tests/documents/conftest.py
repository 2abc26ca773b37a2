"""Documents built directly, as `bot.documents.build` would, for the renderer's tests."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pypdf import PdfReader

from bot.documents.model import (
    Branding,
    DocumentContent,
    DocumentKind,
    Party,
    TaxTreatment,
)
from bot.documents.tax import line, summarize

ISSUED = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)

SELLER = Party(
    name="ChargeDesk Demo GmbH",
    address=("Friedrichstraße 68", "10117 Berlin"),
    country="DE",
    email="billing@chargedesk.example",
    tax_id="DE123456789",
    registration="HRB 123456 B, Amtsgericht Charlottenburg",
)
BUYER = Party(
    name="Acme Industries SARL",
    address=("12 rue de la Paix", "75002 Paris"),
    country="FR",
    email="accounts@acme.example",
    tax_id="FR40303265045",
)
BRANDING = Branding(
    primary_colour="#1F3A5F",
    accent_colour="#E8EEF5",
    footer="Bank: Berliner Sparkasse · IBAN DE89 3704 0044 0532 0130 00 · BIC COBADEFFXXX",
    website="chargedesk.example",
)


def make_document(
    kind: DocumentKind = DocumentKind.receipt,
    *,
    items: Sequence[tuple[str, int, int] | tuple[str, int, int, str]] = (
        ("Pro plan, monthly", 1, 11900),
    ),
    rate: Decimal | str = "19",
    treatment: TaxTreatment = TaxTreatment.standard,
    **fields: Any,
) -> DocumentContent:
    """A document of `kind`; `items` are (description, quantity, gross minor units[, rate])."""
    standard = treatment is TaxTreatment.standard
    lines = tuple(
        line(
            item[0],
            item[2],
            Decimal(item[3] if len(item) > 3 else rate) if standard else Decimal(0),
            quantity=item[1],
        )
        for item in items
    )
    prefix = {"invoice": "INV", "receipt": "RCT", "credit_note": "CN"}[kind.value]
    values: dict[str, Any] = {
        "kind": kind,
        "number": f"{prefix}-2025-000042",
        "entity": "default",
        "issued_at": ISSUED,
        "locale": "en_GB",
        "language": "en",
        "currency": "EUR",
        "seller": SELLER,
        "buyer": BUYER,
        "branding": BRANDING,
        "lines": lines,
        "taxes": summarize(lines),
        "treatment": treatment,
        "tax_name": "VAT",
        "source_gateway": "stripe",
        "source_id": "ch_3MtwBwLkdIwHu7ix28a3tqPa",
        "reference": "ch_3MtwBwLkdIwHu7ix28a3tqPa",
        "paid_at": ISSUED if kind is not DocumentKind.invoice else None,
        "payment_method": "Visa •••• 4242" if kind is DocumentKind.receipt else None,
    }
    if kind is DocumentKind.invoice:
        values["due_date"] = datetime(2025, 3, 26, tzinfo=UTC)
    if kind is DocumentKind.credit_note:
        values |= {
            "related_number": "INV-2025-000041",
            "related_issued_at": datetime(2025, 2, 28, tzinfo=UTC),
            "reason": "Duplicate charge",
            "reference": "re_3MtwBwLkdIwHu7ix0x7Qy1Zz",
        }
    values |= fields
    return DocumentContent(**values)


def pages_text(pdf: bytes) -> list[str]:
    """The text of each page as pypdf extracts it, spaces normalised (no-break spaces too)."""
    reader = PdfReader(io.BytesIO(pdf))
    return [" ".join(page.extract_text().split()) for page in reader.pages]


def pdf_text(pdf: bytes) -> str:
    return " ".join(pages_text(pdf))
