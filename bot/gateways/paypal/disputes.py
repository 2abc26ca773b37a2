"""PayPal disputes (Customer Disputes v1, over httpx: the SDK has none): read them
(`GET /v1/customer/disputes?disputed_transaction_id=…`, `GET /v1/customer/disputes/{id}`),
accept (`POST …/accept-claim`, a form whose `input` JSON holds our note: the description
takes only multipart/form-data there) and answer with evidence (`POST …/provide-evidence`,
a multipart form: `input` JSON naming the documents, then our PDFs as `evidence-file` parts).

PayPal's disputes API takes no PayPal-Request-Id, so neither POST is retried blind: the
dispute is read first, and again after an unknown outcome. Our evidence's last note ends with
`ChargeDesk request <key>`: a dispute whose evidence carries it was answered by this key (the
same result, nothing sent twice); one accepted already (resolved in the buyer's favour) is
the same result of an accept; any other dispute no longer waiting for us is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from bot.disputes.evidence import Evidence, EvidenceFile
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.checks import require_unanswered
from bot.gateways.paypal.client import FormPart, PayPalAPI
from bot.gateways.paypal.mapping import NAME, Json, money_from_paypal, paypal_time
from bot.models import Charge, ChargeStatus, Dispute, DisputeStatus

log = logging.getLogger(__name__)

PATH = "/v1/customer/disputes"
MARK = "ChargeDesk request "
MAX_NOTES = 2000  # PayPal's limit on one evidence's notes
PAGE_SIZE = 50  # the most the list gives per page
MAX_LISTED = 500  # open disputes read for reminders
# Disputes come within 180 days of a payment; older payments are not asked about on the card,
# and at most this many of the newest payments are (one call each).
DISPUTE_WINDOW = timedelta(days=180)
MAX_CHARGES_ASKED = 20

_WAITING = {"WAITING_FOR_SELLER_RESPONSE": DisputeStatus.needs_response,
            "OPEN": DisputeStatus.needs_response}  # fmt: skip
# Payments money moved on (an authorization not captured cannot be disputed).
_PAID = frozenset({ChargeStatus.succeeded, ChargeStatus.partially_refunded, ChargeStatus.refunded})
_WON = frozenset({"RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER", "DENIED"})
_ACCEPTED = frozenset({"RESOLVED_BUYER_FAVOUR", "ACCEPTED", "RESOLVED_WITH_PAYOUT"})
# Which of our texts and documents go under which PayPal evidence type: what was bought
# (with our receipt and invoice), then everything else (credit notes; our mark ends it).
_GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("DETAILS_OF_PURCHASE", ("receipt", "invoice"),
     ("customer_name", "customer_email", "billing_address", "product_description",
      "service_date", "subscription_terms")),
    ("OTHER", ("credit_note",), ("refund_history", "communication", "note")),
)  # fmt: skip
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_, -]+")  # what PayPal's document name allows


# --- mapping (pure) ------------------------------------------------------------------------


def dispute_status(body: Json) -> DisputeStatus:
    """PayPal's status (and, once resolved, its outcome) in our four words."""
    status = str(body.get("status") or "")
    if status in _WAITING:
        return _WAITING[status]
    if status != "RESOLVED":
        return DisputeStatus.under_review  # the buyer's turn, PayPal's review, OTHER
    outcome = (body.get("dispute_outcome") or {}).get("outcome_code")
    return DisputeStatus.won if outcome in _WON else DisputeStatus.lost


def parse_dispute(body: Json) -> Dispute:
    """A full dispute (or a list's summary, which names no payment) as our model."""
    disputed = (body.get("disputed_transactions") or [{}])[0]
    return Dispute(
        gateway=NAME,
        id=str(body["dispute_id"]),
        charge_id=str(disputed.get("seller_transaction_id") or ""),
        amount=money_from_paypal(body["dispute_amount"]),
        reason=str(body.get("reason") or "OTHER").lower(),
        status=dispute_status(body),
        evidence_due_by=paypal_time(body.get("seller_response_due_date")),
    )


def accepted(body: Json) -> bool:
    outcome = (body.get("dispute_outcome") or {}).get("outcome_code")
    return body.get("status") == "RESOLVED" and outcome in _ACCEPTED


def answered_by(body: Json, key: str) -> bool:
    """Whether evidence carrying our key is on the dispute already."""
    return any(MARK + key in str(e.get("notes") or "") for e in body.get("evidences") or [])


def document_names(files: tuple[EvidenceFile, ...]) -> list[str]:
    """Each file's name as PayPal's document name allows it (`R/2026 1.pdf` -> `R-2026 1.pdf`),
    unique within one answer."""
    names: list[str] = []
    for file in files:
        stem = _NAME_CHARACTERS.sub("-", file.filename.rpartition(".")[0]).strip() or file.kind
        name, n = f"{stem}.pdf", 2
        while name in names:
            name, n = f"{stem}-{n}.pdf", n + 1
        names.append(name)
    return names


def paypal_evidence(evidence: Evidence, key: str) -> list[FormPart]:
    """The provide-evidence form: `input` (evidences, each with notes of at most 2,000
    characters and the documents it names), then one `evidence-file` part per PDF."""
    named = list(zip(evidence.files, document_names(evidence.files), strict=True))
    mark = MARK + key
    entries: list[Json] = []
    for evidence_type, kinds, fields in _GROUPS:
        last = evidence_type == _GROUPS[-1][0]
        room = MAX_NOTES - (len(mark) + 2 if last else 0)
        notes = _clip(evidence.combined_text(fields), room)
        if last:
            notes = f"{notes}\n\n{mark}" if notes else mark
        entry: Json = {"evidence_type": evidence_type}
        documents = [{"name": name} for f, name in named if f.kind in kinds]
        if documents:
            entry["documents"] = documents
        if notes:
            entry["notes"] = notes
        if len(entry) > 1:
            entries.append(entry)
    form = [_input({"evidences": entries})]
    form += [("evidence-file", (name, f.content(), f.content_type)) for f, name in named]
    return form


def _input(payload: Json) -> FormPart:
    """The form's `input` part: the request's JSON, beside any files."""
    return ("input", (None, json.dumps(payload).encode(), "application/json"))


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 1] + "…"


# --- calls ---------------------------------------------------------------------------------


async def read(api: PayPalAPI, dispute_id: str) -> Json:
    reply = await api.rest("GET", f"{PATH}/{dispute_id}", verb="read", what=f"dispute {dispute_id}")
    return reply.body


async def get(api: PayPalAPI, dispute_id: str) -> Dispute:
    return parse_dispute(await read(api, dispute_id))


async def _listed(api: PayPalAPI, params: dict[str, str], what: str, most: int) -> list[Json]:
    """Every dispute the list gives for `params`, following its `next` links."""
    found: list[Json] = []
    query = {**params, "page_size": str(PAGE_SIZE)}
    while len(found) < most:
        body = (await api.rest("GET", PATH, params=query, verb="list", what=what)).body or {}
        found.extend(body.get("items") or [])
        following = next((lk for lk in body.get("links") or [] if lk.get("rel") == "next"), None)
        if following is None:
            break
        query = dict(parse_qsl(urlsplit(str(following["href"])).query))
    return found[:most]


async def of_charges(api: PayPalAPI, charges: list[Charge], now: datetime) -> list[Dispute]:
    """The disputes on a payer's recent payments, for the card: each payment asked by ID
    (`disputed_transaction_id`), each dispute found read whole (the list gives no due date).
    An app without the disputes permission shows none."""
    recent = [
        c
        for c in charges
        if c.status in _PAID and (c.created is None or now - c.created <= DISPUTE_WINDOW)
    ]

    async def of(charge: Charge) -> list[Dispute]:
        listed = await _listed(api, {"disputed_transaction_id": charge.id},
                               f"disputes of {charge.id}", MAX_LISTED)  # fmt: skip
        return list(await asyncio.gather(*(get(api, str(d["dispute_id"])) for d in listed)))

    try:
        found = await asyncio.gather(*(of(c) for c in recent[:MAX_CHARGES_ASKED]))
    except GatewayError as exc:
        if exc.code != ErrorCode.rejected:
            raise
        log.warning("paypal: disputes not read: %s", exc.message)
        return []
    return [d for group in found for d in group]


async def open_disputes(api: PayPalAPI) -> list[Dispute]:
    """Disputes waiting for our answer, each read whole (the list names no payment)."""
    listed = await _listed(api, {"dispute_state": "REQUIRED_ACTION"}, "open disputes", MAX_LISTED)
    found = await asyncio.gather(*(get(api, str(d["dispute_id"])) for d in listed))
    return [d for d in found if d.status == DisputeStatus.needs_response]


async def accept(api: PayPalAPI, dispute_id: str, key: str) -> Dispute:
    body = await read(api, dispute_id)
    if accepted(body):
        return parse_dispute(body)  # accepted already: by our earlier attempt, or lost anyway
    require_unanswered(parse_dispute(body))
    note = f"Accepted: the customer keeps the payment ({MARK}{key})"
    try:
        await api.rest(
            "POST", f"{PATH}/{dispute_id}/accept-claim", form=[_input({"note": note})],
            verb="accept", what=f"dispute {dispute_id}",
            retry=False,  # no request ID: an unknown outcome is settled by a re-read
        )  # fmt: skip
    except GatewayError:
        if not accepted(body := await read(api, dispute_id)):
            raise
        return parse_dispute(body)
    return await get(api, dispute_id)


def require_evidence_taken(body: Json) -> None:
    """Refuse evidence for a dispute that is answered, or still an inquiry (status OPEN,
    stage INQUIRY): PayPal takes evidence only once it waits for the seller's response."""
    require_unanswered(parse_dispute(body))
    if body.get("status") != "WAITING_FOR_SELLER_RESPONSE":
        raise GatewayError(
            ErrorCode.invalid_state,
            f"dispute {body.get('dispute_id')} is {str(body.get('status')).lower()} (an "
            "inquiry): PayPal takes evidence only once it waits for the seller's response; "
            "accept it, or answer the buyer in PayPal's Resolution Center",
            gateway=NAME, raw_code=str(body.get("status")),
        )  # fmt: skip


async def submit(api: PayPalAPI, dispute_id: str, evidence: Evidence, key: str) -> Dispute:
    body = await read(api, dispute_id)
    if answered_by(body, key):
        return parse_dispute(body)  # our evidence is there already: a retry after a lost answer
    require_evidence_taken(body)
    try:
        await api.rest(
            "POST", f"{PATH}/{dispute_id}/provide-evidence", form=paypal_evidence(evidence, key),
            verb="send evidence for", what=f"dispute {dispute_id}",
            retry=False,  # no request ID: an unknown outcome is settled by a re-read
        )  # fmt: skip
    except GatewayError:
        if not answered_by(body := await read(api, dispute_id), key):
            raise
        return parse_dispute(body)
    return await get(api, dispute_id)
