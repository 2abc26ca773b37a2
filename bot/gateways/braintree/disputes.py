"""Braintree disputes through the SDK: `dispute.accept`, evidence (`document_upload.create`
then `dispute.add_file_evidence`, `dispute.add_text_evidence`) and `dispute.finalize`.

Braintree takes no idempotency key, so the dispute is read back first. Our text evidence
ends with one entry naming the request (`ChargeDesk request apr_…`), added after the files
and before `finalize`: a retry that finds it only finalizes (if still open), and a dispute
no longer open is never answered again.
"""

from __future__ import annotations

import io
from typing import Any

from braintree import DisputeSearch

from bot.disputes.evidence import Evidence
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.braintree.client import BraintreeAPI
from bot.gateways.braintree.mapping import NAME, field, parse_dispute
from bot.gateways.checks import require_unanswered
from bot.models import Dispute, DisputeStatus

MARK = "ChargeDesk request "


async def read(api: BraintreeAPI, dispute_id: str) -> Any:
    found = await api.dispute(dispute_id)
    if found is None:
        raise GatewayError(
            ErrorCode.not_found, f"no dispute {dispute_id} at Braintree", gateway=NAME
        )
    return found


async def open_disputes(api: BraintreeAPI) -> list[Dispute]:
    def search(sdk: Any) -> list[Any]:
        return list(sdk.dispute.search(DisputeSearch.status.in_list("open")).disputes.items)

    found = await api.read(search, verb="search", what="open disputes")
    return [parse_dispute(d) for d in found]


async def accept(api: BraintreeAPI, dispute_id: str) -> Dispute:
    current = parse_dispute(await read(api, dispute_id))
    if current.status == DisputeStatus.lost:
        return current  # accepted already: by our earlier attempt, or lost anyway
    require_unanswered(current)
    what = f"dispute {dispute_id}"
    await api.write(lambda sdk: sdk.dispute.accept(dispute_id), verb="accept", what=what)
    return parse_dispute(await read(api, dispute_id))


async def submit(api: BraintreeAPI, dispute_id: str, evidence: Evidence, key: str) -> Dispute:
    raw = await read(api, dispute_id)
    current = parse_dispute(raw)
    ours = any(MARK + key in str(field(e, "comment") or "") for e in field(raw, "evidence") or [])
    if current.status != DisputeStatus.needs_response:
        if ours:
            return current
        require_unanswered(current)
    what = f"dispute {dispute_id}"
    if not ours:
        for file in evidence.files:
            content = io.BytesIO(file.content())
            content.name = file.filename
            uploaded = await api.write(
                lambda sdk, content=content: sdk.document_upload.create(
                    {"kind": "evidence_document", "file": content}
                ),
                verb="upload",
                what=file.filename,
            )
            upload_id = str(uploaded.document_upload.id)
            await api.write(
                lambda sdk, upload_id=upload_id: sdk.dispute.add_file_evidence(
                    dispute_id, upload_id
                ),
                verb="attach evidence to",
                what=what,
            )
        for text in [f"{label}: {value}" for _, label, value in evidence.texts()] + [MARK + key]:
            await api.write(
                lambda sdk, text=text: sdk.dispute.add_text_evidence(dispute_id, text),
                verb="add evidence to",
                what=what,
            )
    await api.write(lambda sdk: sdk.dispute.finalize(dispute_id), verb="finalize", what=what)
    return parse_dispute(await read(api, dispute_id))
