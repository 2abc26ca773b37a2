"""The panel's Reports page: the `report` command's card, its chart and its files, for
managers and finance staff only, through the panel's guards."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from bot.actors import Actor, Role
from bot.panel.reports import attachment, choices
from bot.reports.export import XLSX_MIME
from tests.conftest import person, say
from tests.panel.conftest import AGENT, BASE, MANAGER, STRANGER, Agent, Panel, text

pytestmark = [pytest.mark.storage, pytest.mark.approvals]

FINANCE = "fiona@example.com"
MONTH = datetime.now(UTC).strftime("%Y-%m")
_IMG = re.compile(r'<img src="([^"]+)" alt="([^"]*)">')
_LINK = re.compile(r'<a class="button" href="([^"]+)" download>([^<]*)</a>')


def with_finance(panel: Panel) -> None:
    """FINANCE reads the reports (roles are read from the settings on every request)."""
    settings = panel.services.settings
    zendesk = settings.helpdesk.zendesk.model_copy(update={"finance": [FINANCE]})
    helpdesk = settings.helpdesk.model_copy(update={"zendesk": zendesk})
    panel.services.settings = settings.model_copy(update={"helpdesk": helpdesk})


async def refund_by(panel: Panel, who: Actor | None = None) -> None:
    """A refund that ran this month, so the refunds report has a row and a chart."""
    reply = await say(
        panel.services, who or person("alex", Role.agent), "refund ch_jane_1 20 reason: goodwill"
    )
    assert reply.error is None, reply.error


async def report_page(agent: Agent, **query: str) -> tuple[int, str]:
    answer = await agent.get("reports", **query)
    return answer.status_code, answer.text


def chart_of(page: str) -> tuple[str, str]:
    found = _IMG.search(page)
    assert found, text(page)
    return html.unescape(found.group(1)), html.unescape(found.group(2))


def downloads(page: str) -> dict[str, str]:
    return {label: html.unescape(href) for href, label in _LINK.findall(page)}


async def test_a_manager_sees_the_refunds_card_and_its_chart_is_the_commands_png(panel: Panel):
    await refund_by(panel)
    maria = await panel.enter(MANAGER)

    status, page = await report_page(maria, kind="refunds", period=MONTH)

    assert status == 200, text(page)
    shown = text(page)
    assert f"Refunds by person and reason · {MONTH}" in shown
    assert "Alex" in shown and "goodwill" in shown and "€20.00" in shown
    source, alt = chart_of(page)
    assert source.startswith(f"{maria.root}reports/chart.png?") and "period=" + MONTH in source
    assert alt == f"Chart: Refunds by person and reason · {MONTH}"
    chart = await maria.web.get(source)
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/png"
    assert chart.headers["cache-control"] == "no-store"
    assert "content-disposition" not in chart.headers
    typed = await say(panel.services, person("maria", Role.manager), f"report refunds {MONTH}")
    assert chart.content.startswith(b"\x89PNG") and chart.content == typed.files[0].content


async def test_the_reports_link_is_in_the_navigation_of_those_who_may_read_reports(panel: Panel):
    with_finance(panel)
    link = '<a href="{root}reports"'
    for who, shown in ((MANAGER, True), (FINANCE, True), (AGENT, False), (STRANGER, False)):
        agent = await panel.enter(who)
        card = (await agent.get("card")).text
        assert (link.format(root=agent.root) in card) is shown, who


async def test_a_finance_person_opens_the_form_and_reads_a_report(panel: Panel):
    with_finance(panel)
    await refund_by(panel)
    fiona = await panel.enter(FINANCE)

    status, form = await report_page(fiona)
    assert status == 200 and '<form method="get" action="' in form
    assert 'aria-current="page">Reports</a>' in form
    for field in ("r-kind", "r-period", "r-by", "r-currency", "r-status"):
        assert f'<label for="{field}">' in form and f'id="{field}"' in form
    assert not _IMG.search(form) and not downloads(form)  # nothing run before it is asked

    status, page = await report_page(fiona, kind="refunds")
    assert status == 200 and "Refunds by person and reason" in text(page)
    assert (await fiona.web.get(chart_of(page)[0])).status_code == 200


async def test_every_report_the_command_offers_is_on_the_form(panel: Panel):
    maria = await panel.enter(MANAGER)
    _, form = await report_page(maria)
    for field in ("kind", "by", "status"):
        for value in choices(field):
            assert f'<option value="{value}"' in form, (field, value)


@pytest.mark.parametrize("who", [AGENT, STRANGER])
async def test_an_agent_or_read_only_staff_get_the_refusal_and_no_data(panel: Panel, who: str):
    await refund_by(panel)
    alex = await panel.enter(who)

    for query in ({}, {"kind": "refunds", "period": MONTH}):
        status, page = await report_page(alex, **query)
        assert status == 403
        assert "report needs the finance or manager role" in text(page)
        assert "goodwill" not in page and "€20.00" not in text(page)
        assert '<form method="get"' not in page and not _IMG.search(page)
    for address in ("reports/chart.png", "reports/download"):
        answer = await alex.get(address, kind="refunds", period=MONTH, format="csv")
        assert answer.status_code == 403, address
        assert answer.headers["content-type"].startswith("text/html")
        assert "goodwill" not in answer.text and "content-disposition" not in answer.headers


async def test_the_csv_download_is_the_commands_file_sent_as_an_attachment(panel: Panel):
    await refund_by(panel)
    maria = await panel.enter(MANAGER)
    _, page = await report_page(maria, kind="refunds", period=MONTH)
    links = downloads(page)
    assert set(links) == {"Download CSV", "Download XLSX"}

    csv_file = await maria.web.get(links["Download CSV"])

    typed = await say(panel.services, person("maria", Role.manager), f"report refunds csv {MONTH}")
    assert typed.error is None, typed.error
    [expected] = typed.files
    assert csv_file.status_code == 200 and csv_file.content == expected.content
    assert csv_file.headers["content-type"].startswith("text/csv")
    assert csv_file.headers["content-disposition"] == (
        f"attachment; filename=\"{expected.name}\"; filename*=UTF-8''{expected.name}"
    )
    assert expected.name == f"refunds-{MONTH}.csv"
    assert csv_file.headers["cache-control"] == "no-store"
    xlsx = await maria.web.get(links["Download XLSX"])
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    assert xlsx.headers["content-type"] == XLSX_MIME
    assert xlsx.headers["content-disposition"].startswith(
        f'attachment; filename="refunds-{MONTH}.xlsx"'
    )


async def test_a_download_in_a_format_we_do_not_offer_is_one_line(panel: Panel):
    maria = await panel.enter(MANAGER)
    answer = await maria.get("reports/download", kind="refunds", format="pdf")
    assert answer.status_code == 400
    assert "A report downloads as CSV or XLSX." in text(answer.text)
    assert "content-disposition" not in answer.headers


async def test_a_bad_period_is_the_commands_one_line_and_nothing_else(panel: Panel):
    await refund_by(panel)
    maria = await panel.enter(MANAGER)

    status, page = await report_page(maria, kind="refunds", period="2026-13")

    assert status == 400
    notices = re.findall(r'<p class="notice error">(.*?)</p>', page, re.S)
    assert len(notices) == 1 and "\n" not in notices[0]
    assert "'2026-13' is not a period: say 2026-11" in html.unescape(notices[0])
    assert 'class="card' not in page and not _IMG.search(page) and not downloads(page)
    assert 'value="2026-13"' in page  # the form keeps what was typed, to correct it
    chart = await maria.get("reports/chart.png", kind="refunds", period="2026-13")
    assert chart.status_code == 400 and not chart.content.startswith(b"\x89PNG")


async def test_a_period_or_currency_typed_as_a_format_cannot_change_the_format(panel: Panel):
    await refund_by(panel)
    maria = await panel.enter(MANAGER)
    chart = await maria.get("reports/chart.png", kind="refunds", period="xlsx")
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    revenue = await maria.get("reports/chart.png", kind="revenue", currency="CSV")
    assert "content-disposition" not in revenue.headers
    assert revenue.headers["content-type"] in ("image/png", "text/html; charset=utf-8")


async def test_report_files_need_the_sessions_cookie_and_our_own_page(panel: Panel):
    await refund_by(panel)
    maria = await panel.enter(MANAGER)
    alex = await panel.enter(AGENT)
    query = {"kind": "refunds", "period": MONTH, "format": "csv"}
    for address in ("reports/chart.png", "reports/download", "reports"):
        stranger = panel.client()
        assert (await stranger.get(maria.root + address, params=query)).status_code == 401
        # Another session's cookie, sent to this session's address, opens nothing.
        [cookie] = [c for c in alex.web.cookies.jar]
        borrowed = panel.client()
        borrowed.cookies.set(cookie.name, cookie.value or "", domain=BASE.split("//")[1])
        answer = await borrowed.get(maria.root + address, params=query)
        assert answer.status_code == 401 and "goodwill" not in answer.text
        # Fetched from another site's page: refused even with the right cookie.
        if address != "reports":
            framed = await maria.web.get(
                maria.root + address, params=query, headers={"Sec-Fetch-Site": "cross-site"}
            )
            assert framed.status_code == 403 and "goodwill" not in framed.text


async def test_an_unconfirmed_session_reaches_no_report(panel: Panel):
    await refund_by(panel)
    front = await panel.enter(MANAGER, helpdesk="front", vouched=False)
    for address in ("reports", "reports/chart.png", "reports/download"):
        answer = await front.get(address, kind="refunds", period=MONTH, format="csv")
        assert answer.status_code == 303 and answer.headers["location"].endswith("/confirm")


async def test_a_name_with_markup_in_the_report_is_escaped_on_the_page(panel: Panel):
    hostile = Actor(
        platform="test",
        id="mallory",
        name="<script>alert(1)</script>",
        roles=frozenset({Role.agent}),
    )
    await refund_by(panel, hostile)
    maria = await panel.enter(MANAGER)

    _, page = await report_page(maria, kind="refunds", period=MONTH)

    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" in text(page)


async def test_a_report_with_nothing_to_draw_has_no_chart_and_its_address_says_so(panel: Panel):
    maria = await panel.enter(MANAGER)
    status, page = await report_page(maria, kind="refunds", period="2001-01")
    assert status == 200 and "Nothing in this period." in text(page)
    assert not _IMG.search(page) and set(downloads(page)) == {"Download CSV", "Download XLSX"}
    chart = await maria.get("reports/chart.png", kind="refunds", period="2001-01")
    assert chart.status_code == 404
    assert "This report has nothing to draw, so it has no chart." in text(chart.text)


async def test_the_reports_page_speaks_the_agents_language(panel: Panel):
    maria = await panel.enter(MANAGER, locale="ja")
    _, page = await report_page(maria, kind="refunds", lang="ja")
    assert '<html lang="ja">' in page
    assert "レポートを表示" in page and "CSV をダウンロード" in page


def test_a_download_name_is_quoted_whatever_it_holds():
    header = attachment('a"b;c\\d\r\nSet-Cookie: x é.csv')
    assert "\r" not in header and "\n" not in header
    assert header == (
        'attachment; filename="a_b_c_d__Set-Cookie: x _.csv"; '
        "filename*=UTF-8''a%22b%3Bc%5Cd%0D%0ASet-Cookie%3A%20x%20%C3%A9.csv"
    )


async def test_a_report_page_and_its_chart_build_the_report_once(panel: Panel):
    """The page and the chart it shows are one build: the audit log is read once for both
    (counted at the database), and the chart is that build's PNG."""
    await refund_by(panel)
    maria = await panel.enter(MANAGER)
    reads: list[str] = []
    engine = panel.services.db.engine.sync_engine

    def spy(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "FROM audit_log" in statement:
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        status, page = await report_page(maria, kind="refunds", period=MONTH)
        assert status == 200, text(page)
        per_build = len(reads)
        assert per_build >= 1
        chart = await maria.web.get(chart_of(page)[0])
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
    assert len(reads) == per_build  # the chart request built nothing again
    typed = await say(panel.services, person("maria", Role.manager), f"report refunds {MONTH}")
    assert chart.content == typed.files[0].content
