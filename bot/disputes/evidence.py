"""The evidence a dispute is answered with, in neutral fields each gateway maps to its own.

Gathered once, when the agent asks (bot/disputes/gather.py), and kept whole in the approval
request, files included: what the card showed and the manager approved is what is sent.
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, ConfigDict

# Each text field's label on the evidence card, in the order the card lists them.
TEXT_FIELDS: dict[str, str] = {
    "customer_name": "Customer name",
    "customer_email": "Customer email",
    "billing_address": "Billing address",
    "product_description": "Product or service",
    "service_date": "Service date",
    "subscription_terms": "Subscription terms",
    "refund_history": "Refund history",
    "communication": "Communication with the customer",
    "note": "Agent's note",
}
# Stripe keeps at most 150,000 characters of evidence text; one field never needs more than this.
MAX_TEXT = 4000


class EvidenceFile(BaseModel):
    """A document we issued (receipt, invoice, credit note), as a file to upload."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["receipt", "invoice", "credit_note"]
    number: str
    filename: str
    content_type: str = "application/pdf"
    data: str  # base64: the approval request keeps it as JSON

    @classmethod
    def of(cls, kind: str, number: str, pdf: bytes) -> EvidenceFile:
        return cls(
            kind=kind,  # type: ignore[arg-type]
            number=number,
            filename=f"{number}.pdf",
            data=base64.b64encode(pdf).decode(),
        )

    def content(self) -> bytes:
        return base64.b64decode(self.data)

    @property
    def size(self) -> int:
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")


class Evidence(BaseModel):
    """Everything we send for one dispute; empty fields are not sent."""

    model_config = ConfigDict(frozen=True)

    dispute_id: str
    customer_name: str | None = None
    customer_email: str | None = None
    billing_address: str | None = None
    product_description: str | None = None
    service_date: str | None = None  # YYYY-MM-DD, the day of the disputed payment
    subscription_terms: str | None = None
    refund_history: str | None = None
    communication: str | None = None
    note: str | None = None
    files: tuple[EvidenceFile, ...] = ()

    def texts(self) -> list[tuple[str, str, str]]:
        """(field, label, value) of every text field that is set, in the card's order."""
        return [
            (name, label, value)
            for name, label in TEXT_FIELDS.items()
            if (value := getattr(self, name))
        ]

    def summary(self) -> str:
        """`6 fields, 1 file`"""
        fields, files = len(self.texts()), len(self.files)
        return f"{fields} field{'s' * (fields != 1)}, {files} file{'s' * (files != 1)}"

    def combined_text(self, names: tuple[str, ...]) -> str:
        """Several fields in one text, each under its label (for a gateway with one free text)."""
        return "\n\n".join(
            f"{label}:\n{value}" for name, label, value in self.texts() if name in names
        )

    def stored(self) -> dict[str, object]:
        """What the ledger keeps of it: the texts, and the files by number (the PDFs stay ours)."""
        return {
            **{name: value for name, _, value in self.texts()},
            "files": [{"kind": f.kind, "number": f.number} for f in self.files],
        }
