"""The history page, PDF downloads, languages, security headers and CSRF."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.actors import Actor, Role
from bot.documents import on_demand as documents
from bot.store.tables import AuditEntry, DocumentRow, Notification
from tests.portal.conftest import JANE, form_page, open_as, post

pytestmark = pytest.mark.storage

STAFF = Actor(platform="test", id="alex", name="Alex", roles=frozenset({Role.agent}))


async def test_the_history_shows_invoices_payments_subscriptions_and_receipts(client, services):
    await open_as(client, services, JANE)
    html = (await client.get("/portal/")).text

    for expected in (
        "<h1>Your billing</h1>",
        "JANE-0002",
        "Overdue",  # in_jane_overdue is past its due date
        "€36.00",
        "Partly refunded",
        "€19.00 refunded",
        "Pro",
        "€49.00 per month",
        "/portal/pdf/receipt/ledger/ch_jane_1",
    ):
        assert expected in html, expected
    # Charges that took no money have no receipt; a failed one shows as failed.
    assert "/portal/pdf/receipt/ledger/ch_jane_auth" not in html
    assert "/portal/pdf/receipt/ledger/ch_jane_failed" not in html
    assert "Failed" in html
    # The ledger has no hosted payment page: no Pay button.
    assert "/portal/pay/" not in html


async def test_an_invoice_pdf_downloads_once_issued_and_audited(client, services):
    await open_as(client, services, JANE)

    first = await client.get("/portal/pdf/invoice/ledger/in_jane_paid")
    again = await client.get("/portal/pdf/invoice/ledger/in_jane_paid")

    assert first.status_code == 200
    assert first.content.startswith(b"%PDF") and first.content == again.content
    assert first.headers["content-type"] == "application/pdf"
    assert first.headers["content-disposition"].startswith('attachment; filename="INV-')
    assert first.headers["cache-control"] == "private, no-store"
    async with services.db.read() as session:
        issued = await session.scalar(select(func.count()).select_from(DocumentRow))
        downloads = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "portal_download"))
        )
    assert issued == 1
    assert [(d.object_id, d.customer_id, d.actor_platform) for d in downloads] == [
        ("in_jane_paid", "cus_jane", "portal")
    ] * 2


async def test_a_receipt_pdf_and_the_documents_list(client, services):
    await open_as(client, services, JANE)
    receipt = await client.get("/portal/pdf/receipt/ledger/ch_jane_2")
    assert receipt.status_code == 200 and receipt.content.startswith(b"%PDF")

    html = (await client.get("/portal/")).text
    number = receipt.headers["content-disposition"].split('"')[1].removesuffix(".pdf")
    assert f"/portal/pdf/document/{number}" in html and "Receipt" in html
    same = await client.get(f"/portal/pdf/document/{number}")
    assert same.content == receipt.content


async def test_a_credit_note_is_listed_and_downloads(client, services):
    note = await documents.credit_note(services, "ledger:ch_jane_2", "re_jane_2", actor=STAFF)
    await open_as(client, services, JANE)

    html = (await client.get("/portal/")).text
    pdf = await client.get(f"/portal/pdf/document/{note.number}")

    assert "Credit note" in html and note.number in html
    assert pdf.status_code == 200 and pdf.content == note.pdf


async def test_another_customers_document_is_not_found(client, services):
    johns = await documents.receipt(services, "ledger:ch_john_2", actor=STAFF)
    await open_as(client, services, JANE)

    answer = await client.get(f"/portal/pdf/document/{johns.number}")
    missing = await client.get("/portal/pdf/document/INV-2099-999999")
    unpaid = await client.get("/portal/pdf/receipt/ledger/ch_jane_failed")
    elsewhere = await client.get("/portal/pdf/invoice/stripe/in_jane_paid")

    for refused in (answer, missing, unpaid, elsewhere):
        assert refused.status_code == 404
        assert refused.headers["content-type"].startswith("text/html")
        assert "There is no such item" in refused.text


async def test_pages_need_a_session(client):
    for path in (
        "/portal/",
        "/portal/tax-id",
        "/portal/question",
        "/portal/pdf/invoice/ledger/in_jane_paid",
    ):
        answer = await client.get(path)
        assert (answer.status_code, answer.headers["location"]) == (
            303,
            "/portal/signin?reason=signin_needed",
        ), path


async def test_security_headers_on_every_page(client, services):
    await open_as(client, services, JANE)
    for path in (
        "/portal/",
        "/portal/signin",
        "/portal/l/forged.1.x",
        "/portal/pdf/invoice/ledger/in_jane_paid",
    ):
        headers = (await client.get(path)).headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert "script-src" not in policy  # no scripts at all: default-src 'none' covers them
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"
        assert "no-store" in headers["cache-control"]
    style = await client.get("/portal/style.css")
    assert style.status_code == 200 and "--brand:" in style.text
    assert style.headers["cache-control"].startswith("public")


async def test_pages_carry_no_inline_script_or_style(client, services):
    await open_as(client, services, JANE)
    for path in ("/portal/", "/portal/tax-id", "/portal/question", "/portal/signin"):
        html = (await client.get(path)).text
        assert "<script" not in html and "style=" not in html and "<style" not in html, path


async def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(client, services):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/question")

    missing = await post(client, "/portal/question", None, question="Why two charges?")
    wrong = await post(client, "/portal/question", token[::-1], question="Why two charges?")
    foreign = await client.post(
        "/portal/question",
        data={"csrf": token, "question": "Why two charges?"},
        headers={"origin": "https://evil.example"},
    )
    cross = await client.post(
        "/portal/tax-id",
        data={"csrf": token, "country": "DE", "number": "DE136695976"},
        headers={"sec-fetch-site": "cross-site"},
    )

    for refused in (missing, wrong, foreign, cross):
        assert refused.status_code == 403
        assert "The form could not be sent" in refused.text
    async with services.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Notification)) == 0
    profile = await services.gateways.lookup(JANE)
    assert profile.profiles[0].tax_ids == ()


async def test_a_form_that_is_not_url_encoded_is_refused(client, services):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/question")
    answer = await client.post(
        "/portal/question", files={"question": ("q.txt", b"hello")}, data={"csrf": token}
    )
    assert answer.status_code == 400 and "The form could not be read" in answer.text


@pytest.mark.parametrize(
    ("lang", "heading"),
    [
        ("de", "Ihre Abrechnung"),
        ("fr", "Votre facturation"),
        ("it", "La sua fatturazione"),
        ("pl", "Twoje rozliczenia"),
        ("ja", "ご請求の一覧"),
    ],
)
async def test_the_language_picked_stays_for_the_session(client, services, lang, heading):
    await open_as(client, services, JANE)
    picked = await client.get(f"/portal/?lang={lang}")
    later = await client.get("/portal/tax-id")
    assert f'<html lang="{lang}">' in picked.text and f"<h1>{heading}</h1>" in picked.text
    assert f'<html lang="{lang}">' in later.text


async def test_the_customers_own_locale_comes_before_the_browsers(client, services):
    await open_as(client, services, "yuki.tanaka@example.com")
    page = await client.get("/portal/", headers={"accept-language": "de-DE,de;q=0.9"})
    assert '<html lang="ja">' in page.text
    assert "￥5,500" in page.text or "¥5,500" in page.text
    assert "支払い済み" in page.text


async def test_the_browsers_language_for_a_customer_without_one(client, services):
    signin = await client.get(
        "/portal/signin", headers={"accept-language": "fr-CH, fr;q=0.9, en;q=0.5"}
    )
    assert '<html lang="fr">' in signin.text and "Adresse e-mail" in signin.text

    await open_as(client, services, "fatima.alsabah@example.com")  # Kuwait: no language of ours
    page = await client.get("/portal/", headers={"accept-language": "it-IT,it;q=0.9"})
    assert (
        '<html lang="it">' in page.text and "12,500" in page.text
    )  # three decimals, Italian style


async def test_amounts_and_dates_follow_the_locale(client, services):
    await open_as(client, services, "ksiegowosc@kowalski.example.pl")
    html = (await client.get("/portal/")).text
    assert '<html lang="pl">' in html
    assert "1440,00\xa0€" in html or "1\xa0440,00\xa0€" in html
    assert "PL5260250274" in html  # the VAT ID on file
