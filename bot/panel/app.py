"""The agent panel's routes, mounted at /panel by `bot/web.py`.

    /panel/<entries>                 each helpdesk's signed entry (`entries.py`): opens a session
    /panel/front                     Front's plugin page (`loaders.py`): context, then the entry
    /panel/style.css                 the stylesheet
    /panel/static/<script>           the loader pages' own scripts (`loaders.py`)
    /panel/s/<session>/zendesk       Zendesk's loader: which ticket? (`loaders.py`)
    /panel/s/<session>/zendesk/ticket/<id>   that ticket and its requester, bound once
    /panel/s/<session>/card          the billing card (`?id=` another customer by an ID)
    /panel/s/<session>/search        search by an email or an ID (POST: the search itself)
    /panel/s/<session>/act           a button (POST): its form, or its command run once
    /panel/s/<session>/submit        a form (POST): its command run once
    /panel/s/<session>/approvals     requests waiting for this agent's decision, and their own
    /panel/s/<session>/reports       finance reports (managers, finance): the form, the card;
                                     /reports/chart.png its chart, /reports/download?format=
                                     csv|xlsx its export (each runs the `report` command again)
    /panel/s/<session>/signout       end the session (POST)
    /panel/s/<session>/confirm       an unconfirmed session's only page: confirm the email by a
                                     code (`confirm.py`); /forget (POST) forgets this browser

Pages are drawn on the server from Jinja2 templates, autoescaped, with no script (but
the two loader pages': their own, and their helpdesk's SDK). Every
POST carries the session's CSRF token and must come from our own page (`security.py`);
a refused one changes nothing. What each page shows and does is the door's (`door.py`).
"""

from __future__ import annotations

import functools
import importlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from bot.actors import Role
from bot.panel import entries, loaders, session
from bot.panel.door import Page, PanelDoor, Screen
from bot.panel.reports import CHART, ReportAsk, attachment
from bot.panel.security import CSRF_FIELD, BadForm, PanelHeaders, csrf_ok, read_form
from bot.panel.session import ROOT, PanelSession
from bot.services import Services
from bot.settings import Settings
from bot.translations import LANGUAGES, N_, gettext, language_of

log = logging.getLogger(__name__)

NAMES = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "it": "Italiano",
    "pl": "Polski",
    "ja": "日本語",
}

_env = Environment(
    loader=PackageLoader("bot.panel", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

Handler = Callable[[Request, Screen, PanelDoor], Awaitable[Response]]


class Words:
    """The agent's language: `words(key, **values)` from the catalogs' `panel` messages."""

    def __init__(self, language: str) -> None:
        self.language = language_of(language)

    def __call__(self, key: str, **values: object) -> str:
        return gettext(self.language, "panel", key, **values)


def choose_words(chosen: str | None, accept_language: str | None) -> Words:
    """The session's language (picked, or the helpdesk's), else the browser's, else English."""
    if chosen in LANGUAGES:
        return Words(chosen)
    for part in (accept_language or "").split(",")[:20]:
        tag = part.split(";")[0].strip().lower().replace("_", "-").split("-")[0]
        if tag in LANGUAGES:
            return Words(tag)
    return Words("en")


def _confirm_module() -> Any | None:
    """The email confirmation step of unvouched sessions (`bot/panel/confirm.py`), if there."""
    try:
        return importlib.import_module("bot.panel.confirm")
    except ModuleNotFoundError as exc:
        if exc.name != "bot.panel.confirm":
            raise
        return None


def mount(settings: Settings) -> Mount:
    """The agent panel with its security headers, at /panel."""
    door = PanelDoor()
    confirm = _confirm_module()
    pages: list[BaseRoute] = [
        Route("/", _guarded(door, home)),
        Route("/card", _guarded(door, card)),
        Route("/search", _guarded(door, search), methods=["GET", "POST"]),
        Route("/act", _guarded(door, act), methods=["POST"]),
        Route("/submit", _guarded(door, submit), methods=["POST"]),
        Route("/approvals", _guarded(door, approvals)),
        Route("/reports", _guarded(door, reports)),
        Route("/reports/chart.png", _guarded(door, report_chart)),
        Route("/reports/download", _guarded(door, report_download)),
        Route("/signout", _guarded(door, signout), methods=["POST"]),
        Route(f"/{loaders.ZENDESK_PAGE}", _guarded(door, _loader(loaders.zendesk_loader))),
        Route(
            f"/{loaders.ZENDESK_PAGE}/ticket/{{ticket}}",
            _guarded(door, _loader(loaders.zendesk_ticket)),
        ),
        *(confirm.routes(settings) if confirm is not None else []),
    ]
    routes: list[BaseRoute] = [
        *entries.routes(settings, landings={"zendesk": loaders.zendesk_landing}),
        Route("/front", front_plugin),
        Route("/style.css", stylesheet),
        Route("/static/{name}", loaders.script),
        Mount("/s/{sid}", routes=pages),
    ]
    return Mount(ROOT, routes=routes, middleware=[Middleware(PanelHeaders, settings=settings)])


# --- guards -------------------------------------------------------------------------------


def _services(request: Request) -> Services:
    return request.app.state.services


def _guarded(door: PanelDoor, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page of a live session: a POST only with its CSRF token from our own page;
    whatever fails, the agent gets a page in their language, never a stack trace."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        services = _services(request)
        door.serve(services)
        live = await session.current(request)
        if live is None:
            words = choose_words(None, request.headers.get("accept-language"))
            return _message(
                request, words, None, 401, N_("panel", "ended_title"), N_("panel", "ended_text")
            )
        picked = request.query_params.get("lang")
        if picked in LANGUAGES and picked != live.language:
            await session.choose_language(services, live.id, picked)
            live = await session.load(services, live.id) or live
        words = choose_words(live.language, request.headers.get("accept-language"))
        try:
            if request.method == "POST":
                form = await read_form(request)
                if not csrf_ok(request, form, live, services.settings):
                    log.warning("panel %s: CSRF or origin check failed", request.url.path[:80])
                    return _message(
                        request,
                        words,
                        live,
                        403,
                        N_("panel", "refused_title"),
                        N_("panel", "refused_text"),
                    )
                request.state.form = form
            screen = Screen(live, session.actor(services.settings, live))
            request.state.words = words
            if not live.admitted and handler is not signout:
                # No billing data, shown or changed, until an unvouched email is proved.
                if request.method == "GET":
                    return RedirectResponse(session.url(live.id, "confirm"), status_code=303)
                held = N_("panel", "held_title"), N_("panel", "held_text")
                return _message(request, words, live, 403, *held)
            return await handler(request, screen, door)
        except BadForm as exc:
            log.info("panel %s: unreadable form (%s)", request.url.path[:80], exc)
            return _message(
                request,
                words,
                live,
                400,
                N_("panel", "bad_form_title"),
                N_("panel", "bad_form_text"),
            )
        except Exception:
            incident = secrets.token_hex(4)
            log.exception("panel %s failed (incident %s)", request.url.path[:80], incident)
            return _message(
                request,
                words,
                live,
                500,
                N_("panel", "error_title"),
                N_("panel", "error_text"),
                incident=incident,
            )

    return run


def _loader(
    handler: Callable[[Request, Screen], Awaitable[Page]],
) -> Handler:
    """A loader page of a live session, answered like the door's pages."""

    async def run(request: Request, screen: Screen, door: PanelDoor) -> Response:
        return _answer(request, screen, await handler(request, screen))

    return run


async def front_plugin(request: Request) -> Response:
    """Front's plugin page (no session yet): the loader's page, or its plain refusal."""
    answer = await loaders.front_plugin(request)
    if isinstance(answer, Page):
        return render(request, None, answer.template, status=answer.status, **answer.values)
    return answer


def _form(request: Request) -> dict[str, str]:
    form: dict[str, str] = request.state.form
    return form


# --- pages --------------------------------------------------------------------------------


async def home(request: Request, screen: Screen, door: PanelDoor) -> Response:
    page = "card" if screen.session.requester else "search"
    return RedirectResponse(session.url(screen.session.id, page), status_code=303)


def _viewing(request: Request) -> str | None:
    given = request.query_params.get("id")
    return given.strip()[:320] or None if given else None


async def card(request: Request, screen: Screen, door: PanelDoor) -> Response:
    screen.view = _viewing(request)
    return _answer(request, screen, await door.card(screen))


async def search(request: Request, screen: Screen, door: PanelDoor) -> Response:
    typed = _form(request).get("q", "") if request.method == "POST" else None
    return _answer(request, screen, await door.search(screen, typed))


async def act(request: Request, screen: Screen, door: PanelDoor) -> Response:
    return _answer(request, screen, await door.act(screen, _form(request).get("a", "")))


async def submit(request: Request, screen: Screen, door: PanelDoor) -> Response:
    form = _form(request)
    typed = {k.removeprefix("f_"): v for k, v in form.items() if k.startswith("f_")}
    page = await door.send_form(screen, form.get("f", ""), typed)
    return _answer(request, screen, page)


async def approvals(request: Request, screen: Screen, door: PanelDoor) -> Response:
    return _answer(request, screen, await door.approvals(screen))


async def reports(request: Request, screen: Screen, door: PanelDoor) -> Response:
    ask = ReportAsk.read(request.query_params)
    return _answer(request, screen, await door.reports(screen, ask))


async def report_chart(request: Request, screen: Screen, door: PanelDoor) -> Response:
    return await _report_file(request, screen, door, CHART)


async def report_download(request: Request, screen: Screen, door: PanelDoor) -> Response:
    return await _report_file(request, screen, door, request.query_params.get("format", ""))


async def _report_file(request: Request, screen: Screen, door: PanelDoor, fmt: str) -> Response:
    """A report's chart or export as a file, never cached; a download as an attachment."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        # Only our own page (or the agent typing the address) fetches a report's file.
        words: Words = request.state.words
        refused = N_("panel", "refused_title"), N_("panel", "refused_text")
        return _message(request, words, screen.session, 403, *refused)
    ask = ReportAsk.read(request.query_params) or ReportAsk()
    answer = await door.report_file(screen, ask, fmt)
    if isinstance(answer, Page):
        return _answer(request, screen, answer)
    headers = {"Cache-Control": "no-store"}
    if fmt != CHART:
        headers["Content-Disposition"] = attachment(answer.name)
    return Response(answer.content, media_type=answer.mime, headers=headers)


async def signout(request: Request, screen: Screen, door: PanelDoor) -> Response:
    await session.end(_services(request), screen.session.id, "signed_out")
    words: Words = request.state.words
    answer = _message(
        request, words, None, 200, N_("panel", "signed_out_title"), N_("panel", "signed_out_text")
    )
    answer.headers.append(
        "set-cookie",
        f"{session.COOKIE}=; Path={screen.session.root}; Max-Age=0; HttpOnly; Secure; "
        "SameSite=None; Partitioned",
    )
    return answer


# --- rendering ----------------------------------------------------------------------------


_ROLE_WORDS = {
    Role.admin: N_("panel", "role_admin"),
    Role.manager: N_("panel", "role_manager"),
    Role.agent: N_("panel", "role_agent"),
}
_VIEWER = N_("panel", "role_viewer")


def _role_key(screen: Screen | None) -> str:
    if screen is None:
        return _VIEWER
    return next((key for role, key in _ROLE_WORDS.items() if screen.actor.has(role)), _VIEWER)


def _answer(request: Request, screen: Screen, page: Page) -> Response:
    if page.redirect is not None:
        return RedirectResponse(page.redirect, status_code=303)
    return render(
        request, screen.session, page.template, status=page.status, screen=screen, **page.values
    )


def render(
    request: Request,
    live: PanelSession | None,
    template: str,
    *,
    status: int = 200,
    screen: Screen | None = None,
    **values: Any,
) -> HTMLResponse:
    """A whole panel page in the agent's language."""
    services = _services(request)
    words: Words = getattr(request.state, "words", None) or choose_words(
        live.language if live else None, request.headers.get("accept-language")
    )

    def csrf_field() -> Markup:
        assert live is not None
        token = session.csrf_token(services.settings, live.id)
        return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)

    confirm = _confirm_module()
    html = _env.get_template(template).render(
        t=words,
        lang=words.language,
        languages=list(NAMES.items()),
        live=live,
        root=live.root if live else f"{ROOT}/",
        style=f"{ROOT}/style.css",
        csrf_field=csrf_field,
        role=words(_role_key(screen)),
        read_only=screen is not None and not screen.actor.has(Role.agent),
        reports_link=screen is not None and screen.reports,
        unconfirmed=live is not None and not live.trusted,
        can_confirm=confirm is not None,
        now=datetime.now(UTC),
        **values,
    )
    return HTMLResponse(html, status_code=status)


def _message(
    request: Request,
    words: Words,
    live: PanelSession | None,
    status: int,
    title: str,
    text: str,
    **values: str,
) -> HTMLResponse:
    request.state.words = words
    return render(
        request, live, "message.html", status=status, title_key=title, text=words(text, **values)
    )


@cache
def _css() -> str:
    return resources.files("bot.panel").joinpath("static", "panel.css").read_text("utf-8")


async def stylesheet(request: Request) -> Response:
    return Response(
        _css(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )
