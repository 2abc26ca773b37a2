"""Document drafts for tests, built the way the service builds them."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.documents import build
from bot.documents.config import Branding, Entity, TaxConfig
from bot.documents.model import DocumentContent
from bot.models import Address, Charge, ChargeStatus, Customer
from bot.money import Money
from tests.conftest import REPO

SETTINGS = build.Settings(
    branding=Branding(
        default_entity="acme",
        entities={"acme": Entity(legal_name="Acme GmbH", country="DE", vat_id="DE136695976")},
    ),
    tax=TaxConfig(rates={"DE": Decimal(19), "FR": Decimal(20)}),
    default_locale="en_US",
)
WHEN = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def draft(charge_id: str, amount: int = 11900, *, country: str = "DE") -> DocumentContent:
    """A receipt draft for a paid EUR charge of a customer in `country`."""
    customer = Customer(
        gateway="ledger",
        id="cus_t",
        email="t@example.com",
        name="Test Kunde",
        address=Address(line1="Hauptstr. 1", postal_code="10115", city="Berlin", country=country),
    )
    charge = Charge(
        gateway="ledger",
        id=charge_id,
        customer_id="cus_t",
        amount=Money(minor=amount, currency="EUR"),
        amount_captured=amount,
        status=ChargeStatus.succeeded,
        description="Pro plan",
        created=WHEN,
    )
    return build.receipt(SETTINGS, charge, build.Buyer(customer), invoice=None, now=WHEN)


def plain_render(content: DocumentContent) -> bytes:
    """A stand-in PDF for numbering tests: what matters there is the number, not the drawing."""
    return json.dumps(content.model_dump(mode="json"), sort_keys=True).encode()


@pytest.fixture
def repo_branding(_no_repo_config: None) -> None:
    """The repository's config/branding.toml, tax.toml and logo in the test's config folder."""
    folder = Path(os.environ["CHARGEDESK_CONFIG_DIR"])
    for name in ("branding.toml", "tax.toml", "logo.png"):
        shutil.copy(REPO / "config" / name, folder / name)
