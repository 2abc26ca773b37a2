"""What the agent panel's reports page asks for, and how a report's file is sent.

The page is a GET form: its words travel in the query, so the chart and the downloads are
addresses of their own that run the same `report` command again. Only the choices the
command's own Args model declares are read for `kind`, `by` and `status`; the period is the
agent's text, and the command says what is wrong with it. Every word is handed over in a
form the command cannot mistake for another (`by=week`, `currency=EUR`), and the explicit
ones come after the period in the command's order, so a period typed as `csv` or `week`
cannot change the format or the grouping. The door (`door.py`) runs the command.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin
from urllib.parse import quote, urlencode

from redis.exceptions import RedisError

from bot.cards.model import Attachment, Reply
from bot.commands.router import COMMANDS
from bot.services import Services

COMMAND = "report"
FILES = ("csv", "xlsx")  # what the download links offer; the page itself shows the chart
CHART = "card"  # the format whose file is the chart
_TYPED = 100  # characters of a typed word kept (the command allows fewer, and says so)


def choices(field: str) -> tuple[str, ...]:
    """The values the `report` command's Args model allows for one of its Literal fields."""
    info = COMMANDS[COMMAND].args.model_fields[field]
    return get_args(info.annotation) if get_origin(info.annotation) is Literal else ()


@dataclass(frozen=True)
class ReportAsk:
    """One report as the form asks for it: its kind, period text and narrowing choices."""

    kind: str = "refunds"
    period: str = ""
    by: str = "month"
    currency: str = ""
    status: str = "open"

    @classmethod
    def read(cls, query: Mapping[str, str]) -> ReportAsk | None:
        """The report a query asks for; None when it names none (the empty form).
        A choice the command does not offer stays at its default."""
        kind = query.get("kind", "")
        if kind not in choices("kind"):
            return None
        by, status = query.get("by", ""), query.get("status", "")
        return cls(
            kind=kind,
            period=" ".join(query.get("period", "").split())[:_TYPED],
            by=by if by in choices("by") else cls.by,
            currency=query.get("currency", "").strip().upper()[:_TYPED],
            status=status if status in choices("status") else cls.status,
        )

    def arguments(self, fmt: str) -> dict[str, Any]:
        """The `report` command's arguments, as a typed line would give them."""
        raw: dict[str, Any] = {"kind": self.kind, "format": fmt, "by": f"by={self.by}"}
        if self.period:
            raw["period"] = self.period
        if self.kind == "revenue" and self.currency:
            raw["currency"] = f"currency={self.currency}"
        if self.kind == "invoices":
            raw["status"] = f"status={self.status}"
        return raw

    def query(self, **extra: str) -> str:
        """This report's words for an address (the chart's, a download's)."""
        given = {"kind": self.kind, "period": self.period, "by": self.by,
                 "currency": self.currency, "status": self.status, **extra}  # fmt: skip
        return urlencode({k: v for k, v in given.items() if v})


def attachment(name: str) -> str:
    """`Content-Disposition` for a download: the name quoted as plain ASCII, and in UTF-8
    (RFC 6266) for the browsers that read that form."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


# --- one build per view -------------------------------------------------------------------
# The page runs the command once (card and chart); the chart is its own address (the page's
# <img>, our CSP allows images from 'self' only), so the PNG that build drew is kept here a
# few minutes for that request instead of building the report again.

CHART_SECONDS = 300


def _chart_key(services: Services, session: str, ask: ReportAsk) -> str:
    digest = hashlib.sha256(ask.query().encode()).hexdigest()[:32]
    return services.key("panel", "chart", session, digest)


async def keep_chart(services: Services, session: str, ask: ReportAsk, reply: Reply) -> None:
    """Keep the chart the page's build drew, for the page's own chart request."""
    png = next((f for f in reply.files if f.mime == "image/png"), None)
    if png is None or reply.error is not None:
        return
    kept = json.dumps({"name": png.name, "png": base64.b64encode(png.content).decode()})
    with contextlib.suppress(RedisError):  # not kept: the chart request builds it again
        await services.redis.set(_chart_key(services, session, ask), kept, ex=CHART_SECONDS)


async def kept_chart(services: Services, session: str, ask: ReportAsk) -> Attachment | None:
    """The chart the page's build drew for this session and these words, while kept."""
    try:
        kept = await services.redis.get(_chart_key(services, session, ask))
    except RedisError:
        return None
    if not kept:
        return None
    found = json.loads(kept)
    return Attachment(name=found["name"], mime="image/png", content=base64.b64decode(found["png"]))
