"""`report`: finance reports with a chart, as a card or a CSV/XLSX file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from bot.actors import Role
from bot.cards.model import Attachment, Reply
from bot.cards.report import report_card
from bot.commands.args import Args, echo
from bot.commands.router import Context, command
from bot.reports.agents import agents_report
from bot.reports.chart import render_chart
from bot.reports.export import XLSX_MIME, file_name, to_csv, to_xlsx
from bot.reports.invoices import Which, invoices_report
from bot.reports.model import Report
from bot.reports.period import looks_like_period, parse_period
from bot.reports.refunds import refunds_report
from bot.reports.revenue import By, revenue_report
from bot.reports.tax import tax_report

Kind = Literal["refunds", "agents", "tax", "revenue", "invoices"]
Format = Literal["card", "csv", "xlsx"]
# The words after the kind, in any order: told apart by their shape.
_FREE = ("period", "format", "agent", "code", "by", "gateway", "currency", "status")
_NAMED = ("agent", "code", "by", "gateway", "currency", "status")
_BARE = {"card": "format", "csv": "format", "xlsx": "format", "day": "by", "week": "by",
         "month": "by", "open": "status", "overdue": "status", "paid-late": "status"}  # fmt: skip


class ReportArgs(Args):
    kind: Kind = Field(description="refunds, agents, tax, revenue or invoices")
    period: str | None = Field(
        None,
        max_length=40,
        description="2026-11, 2026-Q4, 2026, last-month, 30d…; default this month",
    )
    format: Format = Field("card", description="card (with a chart), csv or xlsx")
    agent: str | None = Field(
        None, max_length=200, description="only this person (refunds, agents)"
    )
    code: str | None = Field(None, max_length=40, description="only this reason code (refunds)")
    by: By = Field("month", description="revenue per day, week or month")
    gateway: str | None = Field(None, max_length=40, description="only this gateway (revenue)")
    currency: str | None = Field(None, max_length=3, description="only this currency (revenue)")
    status: Which = Field("open", description="invoices: open, overdue or paid-late")

    @model_validator(mode="before")
    @classmethod
    def _sort_words(cls, raw: Any) -> Any:
        """`report revenue week csv 2026-Q4 currency=EUR`: each word to its field."""
        if not isinstance(raw, dict):
            return raw
        sorted_raw = {k: v for k, v in raw.items() if k not in _FREE}
        for key in _FREE:
            value = raw.get(key)
            if value is None or value == "":
                continue
            text = str(value).strip()
            name, eq, rest = text.partition("=")
            if eq and name.lower() in _NAMED:
                sorted_raw[name.lower()] = rest
            elif text.lower() in _BARE:
                sorted_raw[_BARE[text.lower()]] = text.lower()
            elif looks_like_period(text) or key == "period":
                sorted_raw["period"] = text
            elif key in ("agent", "code", "gateway", "currency"):
                sorted_raw[key] = text  # a form's own field
            else:
                raise ValueError(f"{echo(text)} is not a period, format or NAME=VALUE")
        return sorted_raw


async def _build(ctx: Context, args: ReportArgs) -> Report:
    period = parse_period(args.period)
    services = ctx.services
    if args.kind == "refunds":
        return await refunds_report(services, period, agent=args.agent, code=args.code)
    if args.kind == "agents":
        return await agents_report(services, period, agent=args.agent)
    if args.kind == "revenue":
        return await revenue_report(
            services, period, by=args.by, gateway=args.gateway, currency=args.currency
        )
    if args.kind == "invoices":
        return await invoices_report(services, period, which=args.status)
    return await tax_report(services, period)


@command(
    "report",
    args=ReportArgs,
    roles=(Role.manager, Role.finance),
    usage="report refunds|agents|tax|revenue|invoices [period] [csv|xlsx] [NAME=VALUE…]",
    positional=("kind", *_FREE),
)
async def report(ctx: Context, args: ReportArgs) -> Reply:
    """Finance reports, for managers and finance staff.

    `report refunds last-month`: refunds per person and reason code, who approved them,
    the largest and the busiest day against the policy's limits; `agent=alex` or
    `code=goodwill` narrow it. `report agents 2026-Q4`: each person's audited steps with
    their reasons. `report tax 2026-Q4`: tax on the documents we issued per country,
    treatment and rate, credit notes netted. `report revenue 2026 month currency=EUR`:
    gross, refunds, lost disputes and net per month (or `day`, `week`; `gateway=stripe`).
    `report invoices overdue`: what customers owe by age (`open`, `overdue`, `paid-late`).
    Add `csv` or `xlsx` for a file; the card comes with a chart.
    """
    built = await _build(ctx, args)
    files: list[Attachment] = []
    if args.format == "csv":
        files.append(
            Attachment(name=file_name(built, "csv"), mime="text/csv", content=to_csv(built))
        )
    elif args.format == "xlsx":
        files.append(
            Attachment(name=file_name(built, "xlsx"), mime=XLSX_MIME, content=to_xlsx(built))
        )
    else:
        png = render_chart(built)
        if png is not None:
            files.append(Attachment(name=file_name(built, "png"), mime="image/png", content=png))
    card = report_card(built, locale=ctx.services.settings.locale, attached=[f.name for f in files])
    return Reply(cards=[card], files=files)
