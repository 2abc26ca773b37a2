"""The billing pages' routes, mounted at /portal by `bot/web.py`.

A customer arrives by a signed link (`/portal/l/<token>`) or signs in with a
one-time code sent to their billing email. Signed in, they see their payment
history, download invoice, receipt and credit note PDFs, update their card and
pay open invoices on the gateway's own hosted pages (card data never reaches
us), set their tax ID and ask a billing question. Every POST carries the
session's CSRF token; every customer action is in the audit log.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from bot import identity, lookup_cache, questions
from bot.billing_links import LinkRefused, open_link
from bot.documents import on_demand as documents
from bot.documents.issue import IssuedDocument, find
from bot.errors import UserError
from bot.gateways.base import ErrorCode, GatewayError
from bot.keys import signing_key
from bot.models import Charge, Customer, GatewayProfile, Invoice, InvoiceStatus
from bot.payment_requests import hosted
from bot.portal import account as accounts
from bot.portal import auth, i18n, pages, tax_form
from bot.portal.account import Account
from bot.portal.pages import ROOT, message, render
from bot.portal.redact import redact
from bot.portal.security import (
    BadForm,
    SecurityHeaders,
    client_ip,
    csrf_ok,
    exhausted,
    read_form,
    spend,
)
from bot.services import Services
from bot.settings import Settings
from bot.translations import N_

log = logging.getLogger(__name__)

COOKIE = "chargedesk_portal"
LINK_FAILURES_PER_HOUR = 20  # per client address: forged or withdrawn links
CODE_SENDS_PER_HOUR = 10  # per client address (identity also limits per browser and per email)
CODE_CHECKS_PER_HOUR = 30  # per client address (identity also limits per browser)
QUESTIONS_PER_HOUR = 5  # per customer
TAX_SAVES_PER_HOUR = 10  # per customer
# What a payment request's page says when it cannot be paid, by the request's state.
_REQUEST_CLOSED = {
    "paid": N_("page", "request_paid"),
    "cancelled": N_("page", "request_cancelled"),
    "expired": N_("page", "request_expired"),
}
# The sign-in page's notice for each `?reason=`, and what each refused code is told.
_REASONS = {
    "expired": N_("page", "reason_expired"),
    "signed_out": N_("page", "reason_signed_out"),
    "session_ended": N_("page", "reason_session_ended"),
    "signin_needed": N_("page", "reason_signin_needed"),
}
_CODE_ERRORS = {
    "invalid_code": N_("page", "err_invalid_code"),
    "no_code": N_("page", "err_no_code"),
    "code_expired": N_("page", "err_code_expired"),
    "wrong_code": N_("page", "err_wrong_code"),
    "code_used_up": N_("page", "err_code_used_up"),
}

Handler = Callable[[Request], Awaitable[Response]]


def mount(settings: Settings) -> Mount:
    """The billing pages with their session cookie and security headers, at /portal."""
    https = settings.portal.base_url.startswith("https://")
    routes = [
        Route("/", history),
        Route("/l/{token}", link),
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signin/code", signin_code, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/pdf/invoice/{gateway}/{object_id}", pdf_invoice),
        Route("/pdf/receipt/{gateway}/{object_id}", pdf_receipt),
        Route("/pdf/document/{number}", pdf_document),
        Route("/card", card, methods=["POST"]),
        Route("/tax-id", tax_id, methods=["GET", "POST"]),
        Route("/question", question, methods=["GET", "POST"]),
        Route("/pay/{gateway}/{object_id}", pay, methods=["POST"]),
        Route("/request/{token}", pay_request, methods=["GET", "POST"]),
        Route("/style.css", stylesheet),
        Route("/logo", logo),
    ]
    middleware = [
        Middleware(SecurityHeaders, https=https),
        Middleware(
            SessionMiddleware,
            secret_key=signing_key(settings).decode(),
            session_cookie=COOKIE,
            max_age=settings.portal.session_hours * 3600,
            path=ROOT,
            same_site="lax",
            https_only=https,
        ),
    ]
    return Mount(ROOT, routes=routes, middleware=middleware)


# --- helpers ------------------------------------------------------------------------------


def _services(request: Request) -> Services:
    return request.app.state.services


def _words(request: Request, customer: Customer | None = None) -> i18n.Words:
    """The reader's language; `?lang=` picks one for the rest of the session."""
    picked = request.query_params.get("lang")
    if picked in i18n.LANGUAGES and request.session.get(auth.LANG) != picked:
        request.session[auth.LANG] = picked
    return i18n.choose(
        picked=request.session.get(auth.LANG),
        customer=customer,
        accept_language=request.headers.get("accept-language"),
        default=_services(request).settings.locale,
    )


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _to_signin(reason: str) -> RedirectResponse:
    return _redirect(f"{ROOT}/signin?reason={reason}")


def _guarded(handler: Handler) -> Handler:
    """Whatever fails, the reader gets a page in their language, never a stack trace."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except BadForm as exc:
            log.info("billing page %s: unreadable form (%s)", redact(request.url.path), exc)
            words = _words(request)
            return message(request, words, 400, "bad_request_title", words("bad_request"))
        except GatewayError as exc:
            words = _words(request)
            if exc.code == ErrorCode.not_found:
                return message(request, words, 404, "not_found_title", words("not_found"))
            log.warning("billing page %s: %s (%s)", redact(request.url.path), exc.message, exc.code)
            return message(request, words, 503, "unavailable_title", words("unavailable"))
        except Exception:
            log.exception("billing page %s failed", redact(request.url.path))
            words = _words(request)
            return message(request, words, 500, "error_title", words("error_text"))

    return run


async def _customer(request: Request) -> str | Response:
    """The signed-in email, or where to send a reader who is not (any more)."""
    had_session = isinstance(request.session.get(auth.EMAIL), str)
    email = await auth.signed_in(_services(request), request.session)
    if email is None:
        return _to_signin("session_ended" if had_session else "signin_needed")
    return email


async def _post(request: Request) -> tuple[dict[str, str], str] | Response:
    """A signed-in customer's form with a valid CSRF token, or the answer refusing it."""
    form = await read_form(request)
    if not csrf_ok(request, form, _services(request).settings.portal.base_url):
        return _csrf_refused(request)
    email = await _customer(request)
    if isinstance(email, Response):
        return email
    return form, email


def _csrf_refused(request: Request) -> Response:
    log.warning("billing page %s: CSRF check failed", redact(request.url.path))
    words = _words(request)
    return message(
        request, words, 403, "csrf_title", words("csrf_text"), links=((f"{ROOT}/", words("back")),)
    )


def _not_found(request: Request, words: i18n.Words, email: str) -> Response:
    return message(
        request, words, 404, "not_found_title", words("not_found"), email=email,
        links=((f"{ROOT}/", words("back")),),
    )  # fmt: skip


def _pdf(document: IssuedDocument) -> Response:
    filename = "".join(c for c in document.filename if c.isalnum() or c in "-_.") or "document.pdf"
    return Response(
        document.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


def _question_link(words: i18n.Words) -> tuple[str, str]:
    return (f"{ROOT}/question", words("question_button"))


# --- signing in ---------------------------------------------------------------------------


@_guarded
async def link(request: Request) -> Response:
    """A link from a chat or an email: a fresh session for its customer, then their history."""
    services = _services(request)
    words = _words(request)
    address = client_ip(request)
    if await exhausted(services, "link-refused", address, LINK_FAILURES_PER_HOUR):
        return message(request, words, 429, "too_many_title", words("too_many"))
    token = request.path_params["token"]
    try:
        email = await open_link(services, token)
    except LinkRefused as refused:
        if refused.code == "expired":
            return _to_signin("expired")
        await spend(services, "link-refused", address, LINK_FAILURES_PER_HOUR)
        log.warning("billing link refused (%s) from %s", refused.code, address)
        text = words("link_forged" if refused.code == "forged" else "link_revoked")
        return message(
            request, words, 403, "link_refused_title", text,
            links=((f"{ROOT}/signin", words("link_signin")),),
        )  # fmt: skip
    grant = token.split(".", 1)[0]
    await auth.sign_in(services, request.session, email, via="link", grant=grant)
    await auth.audit(
        services, email, "portal_signed_in", "signed_in", detail={"via": "link", "grant": grant}
    )
    # Away from the token's address: it stays out of the history and the address bar.
    return _redirect(f"{ROOT}/")


@_guarded
async def signin(request: Request) -> Response:
    """Step one: the billing email, to which a one-time code goes if it is on file."""
    services = _services(request)
    words = _words(request)
    if request.method == "GET":
        if await auth.signed_in(services, request.session):
            return _redirect(f"{ROOT}/")
        reason = request.query_params.get("reason")
        notice = words(_REASONS[reason]) if reason in _REASONS else None
        return render(
            request,
            words,
            "signin.html",
            title=words("signin_title"),
            notice=notice,
            error=None,
            value="",
        )
    form = await read_form(request)
    if not csrf_ok(request, form, services.settings.portal.base_url):
        return _csrf_refused(request)
    typed = form.get("email", "").strip()[:320]
    error, status = None, 400
    if not await spend(services, "code-send", client_ip(request), CODE_SENDS_PER_HOUR):
        error, status = words("err_rate_limited_send"), 429
    else:
        subject = f"portal:{auth.browser_id(request.session)}"
        try:
            await identity.send_code(services, subject, typed, language=words.language)
        except UserError as exc:
            if exc.code == "rate_limited":
                error, status = words("err_rate_limited_send"), 429
            elif exc.code == "invalid_email":
                error = words("err_invalid_email")
            else:
                raise
    if error is not None:
        return render(
            request, words, "signin.html", title=words("signin_title"), status=status,
            notice=None, error=error, value=typed,
        )  # fmt: skip
    return _redirect(f"{ROOT}/signin/code")


@_guarded
async def signin_code(request: Request) -> Response:
    """Step two: the code from the email proves the reader reads that mailbox."""
    services = _services(request)
    words = _words(request)

    def page(error: str | None = None, status: int = 200) -> Response:
        return render(
            request, words, "code.html", title=words("code_title"), status=status, error=error,
            minutes=identity.CODE_MINUTES,
        )  # fmt: skip

    if request.method == "GET":
        return page()
    form = await read_form(request)
    if not csrf_ok(request, form, services.settings.portal.base_url):
        return _csrf_refused(request)
    if not await spend(services, "code-check", client_ip(request), CODE_CHECKS_PER_HOUR):
        return page(words("err_rate_limited"), 429)
    subject = f"portal:{auth.browser_id(request.session)}"
    try:
        email = await identity.check_code(services, subject, form.get("code", "")[:64])
    except UserError as exc:
        if exc.code == "rate_limited":
            return page(words("err_rate_limited"), 429)
        known = exc.code in _CODE_ERRORS
        return page(words(_CODE_ERRORS[exc.code]) if known else words("err_try_again"), 400)
    await auth.sign_in(services, request.session, email, via="email_code")
    await auth.audit(services, email, "portal_signed_in", "signed_in", detail={"via": "email_code"})
    return _redirect(f"{ROOT}/")


@_guarded
async def signout(request: Request) -> Response:
    form = await read_form(request)
    if not csrf_ok(request, form, _services(request).settings.portal.base_url):
        return _csrf_refused(request)
    await auth.sign_out(_services(request), request.session)
    return _to_signin("signed_out")


# --- the history and its documents ------------------------------------------------------


@_guarded
async def history(request: Request) -> Response:
    services = _services(request)
    email = await _customer(request)
    if isinstance(email, Response):
        return email
    account = await accounts.load(services, email)
    words = _words(request, account.customer)
    return render(
        request, words, "history.html", title=words("history_title"), email=email,
        account=account, has_receipt=accounts.has_receipt, has_document=accounts.has_document,
    )  # fmt: skip


@_guarded
async def pdf_invoice(request: Request) -> Response:
    """Our invoice document for one of the customer's own gateway invoices."""
    return await _own_pdf(request, _owned_invoice, documents.invoice)


@_guarded
async def pdf_receipt(request: Request) -> Response:
    """The receipt for one of the customer's own paid charges."""
    return await _own_pdf(request, _owned_charge, documents.receipt)


_Owned = tuple[GatewayProfile, Invoice | Charge]


def _owned_invoice(account: Account, gateway: str, object_id: str) -> _Owned | None:
    found = account.invoice(gateway, object_id)
    return found if found is not None and accounts.has_document(found[1]) else None


def _owned_charge(account: Account, gateway: str, object_id: str) -> _Owned | None:
    found = account.charge(gateway, object_id)
    return found if found is not None and accounts.has_receipt(found[1]) else None


async def _own_pdf(
    request: Request,
    owned: Callable[[Account, str, str], _Owned | None],
    issue: Callable[..., Awaitable[IssuedDocument]],
) -> Response:
    """Issue (or find) and send the PDF of an object the signed-in customer owns; else 404."""
    services = _services(request)
    email = await _customer(request)
    if isinstance(email, Response):
        return email
    account = await accounts.load(services, email, documents=False)
    gateway, object_id = request.path_params["gateway"], request.path_params["object_id"]
    found = owned(account, gateway, object_id)
    if found is None:
        return _not_found(request, _words(request, account.customer), email)
    profile, _ = found
    try:
        document = await issue(
            services, f"{gateway}:{object_id}", actor=auth.actor(services, email)
        )
    except GatewayError:
        raise
    except UserError:
        return _not_found(request, _words(request, account.customer), email)
    await _downloaded(services, email, document, gateway, object_id, profile.customer.id)
    return _pdf(document)


@_guarded
async def pdf_document(request: Request) -> Response:
    """A document already issued to the customer (credit notes are only reachable this way)."""
    services = _services(request)
    email = await _customer(request)
    if isinstance(email, Response):
        return email
    account = await accounts.load(services, email, documents=False)
    number = request.path_params["number"]
    document = (
        await find(services.db, number)
        if await accounts.owns_document(services, account, number)
        else None
    )
    if document is None:
        return _not_found(request, _words(request, account.customer), email)
    content = document.content
    await _downloaded(services, email, document, content.source_gateway, content.source_id, None)
    return _pdf(document)


async def _downloaded(
    services: Services,
    email: str,
    document: IssuedDocument,
    gateway: str,
    object_id: str,
    customer_id: str | None,
) -> None:
    await auth.audit(
        services, email, "portal_download", "sent", gateway=gateway, object_id=object_id,
        customer_id=customer_id, detail={"document": document.number, "kind": document.kind.value},
    )  # fmt: skip


# --- actions ------------------------------------------------------------------------------


@_guarded
async def card(request: Request) -> Response:
    """To the gateway's own card page (Stripe Checkout or Billing Portal): we never see the card."""
    services = _services(request)
    posted = await _post(request)
    if isinstance(posted, Response):
        return posted
    _, email = posted
    account = await accounts.load(services, email, documents=False)
    words = _words(request, account.customer)
    back = services.settings.portal.base_url.rstrip("/") + f"{ROOT}/"
    failure: GatewayError | None = None
    # A customer billed by several gateways: the one with a live subscription first.
    live = {
        s.gateway
        for s in account.subscriptions()
        if s.status.value in ("active", "past_due", "trialing", "unpaid")
    }
    for profile in sorted(account.profiles, key=lambda p: p.gateway not in live):
        gateway = services.gateways.get(profile.gateway)
        try:
            url = await gateway.card_update_url(profile.customer.id, return_url=back)
        except GatewayError as exc:
            if exc.code == ErrorCode.not_configured:  # the gateway account lacks it: tell us
                log.warning("card update page of %s: %s", profile.gateway, exc.message)
            elif exc.code != ErrorCode.unsupported:
                log.warning("card update page of %s: %s", profile.gateway, exc.message)
                failure = exc
            continue
        await auth.audit(
            services, email, "portal_card_update", "redirected", gateway=profile.gateway,
            customer_id=profile.customer.id,
        )  # fmt: skip
        return _redirect(url)
    if failure is not None:
        raise failure
    await auth.audit(services, email, "portal_card_update", "not_online")
    return message(
        request, words, 200, "card_title", words("card_unsupported"), email=email,
        links=(_question_link(words), (f"{ROOT}/", words("back"))),
    )  # fmt: skip


@_guarded
async def pay(request: Request) -> Response:
    """To the gateway's hosted payment page of one of the customer's own open invoices."""
    services = _services(request)
    posted = await _post(request)
    if isinstance(posted, Response):
        return posted
    _, email = posted
    account = await accounts.load(services, email, documents=False)
    words = _words(request, account.customer)
    found = account.invoice(request.path_params["gateway"], request.path_params["object_id"])
    if found is None:
        return _not_found(request, words, email)
    profile, bill = found
    back = ((f"{ROOT}/", words("back")),)
    if bill.status == InvoiceStatus.paid:
        return message(request, words, 200, "pay_title", words("pay_paid"), email=email, links=back)
    if bill.status != InvoiceStatus.open:
        return message(
            request, words, 200, "pay_title", words("pay_not_open"), email=email, links=back
        )
    if not bill.hosted_url or urlsplit(bill.hosted_url).scheme not in ("https", "http"):
        return message(
            request, words, 200, "pay_title", words("pay_offline"), email=email,
            links=(_question_link(words), *back),
        )  # fmt: skip
    await auth.audit(
        services, email, "portal_pay", "redirected", gateway=bill.gateway, object_id=bill.id,
        customer_id=profile.customer.id, amount=bill.amount_due,
    )  # fmt: skip
    return _redirect(bill.hosted_url)


@_guarded
async def pay_request(request: Request) -> Response:
    """A payment request whose gateway has no pay page of its own (the ledger): the amount,
    what it is for and a Pay button; the signed token in the address is the bearer secret."""
    services = _services(request)
    address = client_ip(request)
    value = request.path_params["token"]
    if await exhausted(services, "link-refused", address, LINK_FAILURES_PER_HOUR):
        words = _words(request)
        return message(request, words, 429, "too_many_title", words("too_many"))
    try:
        page = await hosted.open_page(services, value)
    except LinkRefused as refused:
        words = _words(request)
        if refused.code == "expired":
            return message(request, words, 410, "request_title", words("request_expired"))
        await spend(services, "link-refused", address, LINK_FAILURES_PER_HOUR)
        log.warning("pay link refused (%s) from %s", refused.code, address)
        return message(request, words, 403, "link_refused_title", words("request_refused"))
    words = _words(request)
    if request.session.get(auth.LANG) not in i18n.LANGUAGES and page.request.locale:
        words = i18n.Words(page.request.locale.split("_")[0], page.request.locale)
    if request.method == "POST":
        form = await read_form(request)
        if not csrf_ok(request, form, services.settings.portal.base_url):
            return _csrf_refused(request)
        await hosted.pay(services, page)
        # Back to the page itself: a reload shows the outcome and sends nothing again.
        return _redirect(f"{ROOT}/request/{value}")
    amount = words.money(page.request.amount)
    notice = words(_REQUEST_CLOSED[page.state]) if page.state in _REQUEST_CLOSED else None
    return render(
        request, words, "pay_request.html", title=words("request_title"), token=value,
        amount=amount, description=page.request.description, state=page.state, notice=notice,
    )  # fmt: skip


@_guarded
async def tax_id(request: Request) -> Response:
    """The customer's VAT/GST number: checked, then saved on every gateway that bills them."""
    services = _services(request)
    if request.method == "GET":
        email = await _customer(request)
        if isinstance(email, Response):
            return email
        form: dict[str, str] = {}
    else:
        posted = await _post(request)
        if isinstance(posted, Response):
            return posted
        form, email = posted
    account = await accounts.load(services, email, documents=False)
    words = _words(request, account.customer)
    if request.method == "GET":  # the customer's own country first; a POST says which one
        country = (account.customer.country if account.customer else None) or ""
    else:
        country = form.get("country", "")

    def page(*, status: int = 200, problem: tax_form.TaxIdProblem | None = None, saved: str | None = None,
             number: str = "", unsupported: bool = False) -> Response:  # fmt: skip
        choices = sorted(
            ((c, words.country(c)) for c in tax_form.COUNTRIES), key=lambda c: c[1].casefold()
        )
        error = None
        if problem is not None:
            error = words(
                problem.key, **{k: words.country(v) for k, v in problem.countries.items()}
            )
        return render(
            request, words, "tax_id.html", title=words("tax_title"), status=status, email=email,
            account=account, countries=choices, country=country, number=number, saved=saved,
            error=error, error_field=problem.field if problem else None, unsupported=unsupported,
            submission=_submission(),
        )  # fmt: skip

    if request.method == "GET":
        return page()
    typed = form.get("number", "")[:64]
    try:
        kind, value = tax_form.check(country, typed)
    except tax_form.TaxIdProblem as problem:
        return page(status=400, problem=problem, number=typed)
    if not await spend(services, "tax-id", email, TAX_SAVES_PER_HOUR):
        return message(request, words, 429, "too_many_title", words("too_many"), email=email)
    submission = form.get("submission", "")[:64] or _submission()
    saved_on: list[str] = []
    for profile in account.profiles:
        gateway = services.gateways.get(profile.gateway)
        try:
            await gateway.add_tax_id(
                profile.customer.id, f"{kind}:{value}", replace=True,
                idempotency_key=f"portal-tax:{submission}:{profile.gateway}:{profile.customer.id}",
            )  # fmt: skip
        except GatewayError as exc:
            if exc.code == ErrorCode.unsupported:
                continue
            if exc.code in (ErrorCode.invalid_tax_id, ErrorCode.rejected):  # its own check said no
                problem = tax_form.TaxIdProblem("number", "err_tax_invalid", {"country": country})
                return page(status=400, problem=problem, number=typed)
            raise
        saved_on.append(profile.gateway)
        await lookup_cache.forget(services, profile.gateway, profile.customer.id)
    if not saved_on:
        return page(status=200, number=typed, unsupported=True)
    await auth.audit(
        services, email, "portal_tax_id", "saved",
        detail={"type": kind, "value": value, "gateways": saved_on},
    )  # fmt: skip
    account = await accounts.load(services, email, documents=False)
    return page(saved=value)


def _submission() -> str:
    """One form's ID: sending the same form twice is one change at the gateway."""
    return secrets.token_urlsafe(12)


@_guarded
async def question(request: Request) -> Response:
    """A billing question, delivered to the helpdesk channel with the customer's card."""
    services = _services(request)
    if request.method == "GET":
        email = await _customer(request)
        if isinstance(email, Response):
            return email
        form: dict[str, str] = {}
    else:
        posted = await _post(request)
        if isinstance(posted, Response):
            return posted
        form, email = posted
    account = await accounts.load(services, email, documents=False)
    words = _words(request, account.customer)

    def page(text: str = "", error: str | None = None, status: int = 200) -> Response:
        return render(
            request, words, "question.html", title=words("question_title"), status=status,
            email=email, text=text, error=error, limit=questions.MAX_LENGTH,
        )  # fmt: skip

    if request.method == "GET":
        return page()
    # Browsers send line breaks as CRLF, which their own maxlength counts as one character.
    text = form.get("question", "").replace("\r\n", "\n").strip()
    if not text:
        return page(error=words("err_question_empty"), status=400)
    if len(text) > questions.MAX_LENGTH:
        return page(text, words("err_question_long", max=questions.MAX_LENGTH), 400)
    if not await spend(services, "question", email, QUESTIONS_PER_HOUR):
        return page(text, words("err_question_limit"), 429)
    await questions.ask(services, auth.actor(services, email), email, text, source="billing page")
    return message(
        request, words, 200, "question_sent_title", words("question_sent", email=email), email=email,
        links=((f"{ROOT}/", words("back")),),
    )  # fmt: skip


# --- look ---------------------------------------------------------------------------------


async def stylesheet(request: Request) -> Response:
    css = pages.stylesheet(pages.seller(_services(request)))
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


async def logo(request: Request) -> Response:
    path = pages.seller(_services(request)).logo
    if path is None or not path.is_file():
        return Response(status_code=404)
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
