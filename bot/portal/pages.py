"""Rendering the billing pages: the Jinja2 templates, statuses as words and tones, the stylesheet.

Templates are autoescaped and strict (an unknown name is an error, not an
empty string). Every page gets the reader's words, the seller's name and the
language menu; the CSRF field is only made for pages that have a form, so a
refused link sets no cookie.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bot.documents.config import Entity
from bot.models import Charge, ChargeStatus, Invoice, InvoiceStatus, Subscription
from bot.money import Money
from bot.portal.i18n import NAMES, Words
from bot.portal.security import CSRF_FIELD, csrf_token
from bot.services import Services
from bot.translations import N_

ROOT = "/portal"

_env = Environment(
    loader=PackageLoader("bot.portal", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Each status as (word key, tone). The tone only colours the badge: the word is always shown.
_CHARGE = {
    ChargeStatus.succeeded: (N_("page", "charge_succeeded"), "good"),
    ChargeStatus.authorized: (N_("page", "charge_authorized"), "wait"),
    ChargeStatus.partially_refunded: (N_("page", "charge_partially_refunded"), "info"),
    ChargeStatus.refunded: (N_("page", "charge_refunded"), "info"),
    ChargeStatus.disputed: (N_("page", "charge_disputed"), "bad"),
    ChargeStatus.failed: (N_("page", "charge_failed"), "bad"),
    ChargeStatus.voided: (N_("page", "charge_voided"), "muted"),
}
_INVOICE = {
    InvoiceStatus.draft: (N_("page", "invoice_draft"), "muted"),
    InvoiceStatus.open: (N_("page", "invoice_open"), "wait"),
    InvoiceStatus.paid: (N_("page", "invoice_paid"), "good"),
    InvoiceStatus.void: (N_("page", "invoice_void"), "muted"),
    InvoiceStatus.uncollectible: (N_("page", "invoice_uncollectible"), "bad"),
}
_SUBSCRIPTION = {
    "trialing": (N_("page", "sub_trialing"), "info"),
    "active": (N_("page", "sub_active"), "good"),
    "past_due": (N_("page", "sub_past_due"), "bad"),
    "unpaid": (N_("page", "sub_unpaid"), "bad"),
    "canceled": (N_("page", "sub_canceled"), "muted"),
    "incomplete": (N_("page", "sub_incomplete"), "wait"),
}
_KINDS = {
    "invoice": N_("page", "kind_invoice"),
    "receipt": N_("page", "kind_receipt"),
    "credit_note": N_("page", "kind_credit_note"),
}
_PER = {
    "month": N_("page", "per_month"),
    "year": N_("page", "per_year"),
    "week": N_("page", "per_week"),
    "day": N_("page", "per_day"),
}


def charge_status(charge: Charge) -> tuple[str, str]:
    return _CHARGE[charge.status]


def invoice_status(bill: Invoice) -> tuple[str, str]:
    if bill.is_overdue():
        return N_("page", "invoice_overdue"), "bad"
    return _INVOICE[bill.status]


def subscription_status(sub: Subscription) -> tuple[str, str]:
    return _SUBSCRIPTION[sub.status.value]


def document_kind(kind: str) -> str:
    """The word key of a document kind (invoice, receipt, credit_note)."""
    return _KINDS[kind]


def subscription_next(words: Words, sub: Subscription) -> str:
    """When it renews or ends, in words."""
    if sub.canceled_at is not None or sub.status.value == "canceled":
        return words("ended_on", date=words.date(sub.canceled_at or sub.current_period_end))
    if sub.current_period_end is None:
        return "—"
    when = words.date(sub.current_period_end)
    return (
        words("ends_on", date=when) if sub.cancel_at_period_end else words("renews_on", date=when)
    )


def subscription_price(words: Words, sub: Subscription) -> str:
    amount = words.money(sub.amount)
    return words(_PER[sub.interval], amount=amount) if sub.interval in _PER else amount


def invoice_amount(bill: Invoice) -> Money:
    """What the invoice is for: still due while open, else what was paid (or its total)."""
    if bill.status == InvoiceStatus.paid and bill.amount_paid.minor:
        return bill.amount_paid
    return bill.amount_due


def seller(services: Services) -> Entity:
    return services.branding.entities[services.branding.default_entity]


def render(
    request: Request,
    words: Words,
    template: str,
    *,
    title: str,
    status: int = 200,
    email: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """A whole page in the reader's language."""
    services: Services = request.app.state.services
    entity = seller(services)

    def csrf_field() -> Markup:
        token = csrf_token(request.session)
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)

    page = _env.get_template(template).render(
        t=words,
        lang=words.language,
        title=title,
        root=ROOT,
        email=email,
        seller=entity.legal_name,
        seller_email=entity.email,
        logo=entity.logo is not None,
        languages=list(NAMES.items()),
        csrf_field=csrf_field,
        charge_status=charge_status,
        invoice_status=invoice_status,
        subscription_status=subscription_status,
        document_kind=document_kind,
        subscription_next=lambda sub: subscription_next(words, sub),
        subscription_price=lambda sub: subscription_price(words, sub),
        invoice_amount=invoice_amount,
        now=datetime.now(UTC),
        **context,
    )
    return HTMLResponse(page, status_code=status)


def message(
    request: Request,
    words: Words,
    status: int,
    title_key: str,
    text: str,
    *,
    email: str | None = None,
    links: tuple[tuple[str, str], ...] = (),
) -> HTMLResponse:
    """A short page that says one thing, with links onward."""
    return render(
        request,
        words,
        "message.html",
        title=words(title_key),
        status=status,
        email=email,
        text=text,
        links=list(links),
    )


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #RRGGBB colours (1 to 21)."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


_FALLBACK_BRAND = "#1F3A5F"


@cache
def _base_css() -> str:
    return resources.files("bot.portal").joinpath("static", "portal.css").read_text("utf-8")


def stylesheet(entity: Entity) -> str:
    """The stylesheet with the seller's colours, where they keep text readable (WCAG AA, 4.5:1)."""
    brand = (
        entity.primary_colour
        if contrast(entity.primary_colour, "#FFFFFF") >= 4.5
        else _FALLBACK_BRAND
    )
    soft = entity.accent_colour if contrast(entity.accent_colour, "#1A1A1A") >= 7 else "#E8EEF5"
    theme = f":root {{ --brand: {brand}; --brand-soft: {soft}; }}\n"
    return theme + _base_css()
