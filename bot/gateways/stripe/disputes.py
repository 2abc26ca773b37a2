"""Stripe disputes: read, accept (`POST /v1/disputes/{id}/close`) and answer with evidence
(files uploaded to `POST /v1/files` for purpose `dispute_evidence`, then `POST /v1/disputes/{id}`
with `evidence[...]`, `submit=true` and our key in the metadata).

Exactly once: every POST carries the request's idempotency key (each file its own, derived),
and the dispute is read back first: evidence carrying our key is done already, and a dispute
no longer waiting for an answer is never answered again.
"""

from __future__ import annotations

import io
from typing import Any

from bot.disputes.evidence import Evidence
from bot.gateways.checks import require_unanswered
from bot.gateways.stripe.client import StripeAPI
from bot.gateways.stripe.mapping import (
    KEY_META,
    evidence_files,
    metadata_of,
    parse_dispute,
    stripe_evidence,
)
from bot.models import Dispute, DisputeStatus

MAX_LISTED = 1000  # disputes read when looking for those still open


async def read(api: StripeAPI, dispute_id: str) -> dict[str, Any]:
    return await api.get(
        lambda: api.v1.disputes.retrieve_async(dispute_id), f"dispute {dispute_id}"
    )


async def open_disputes(api: StripeAPI) -> list[Dispute]:
    listed = await api.list(api.v1.disputes.list_async, {}, "disputes", MAX_LISTED)
    found = [parse_dispute(raw) for raw in listed]
    return [d for d in found if d.status == DisputeStatus.needs_response]


async def accept(api: StripeAPI, dispute_id: str, key: str) -> Dispute:
    current = parse_dispute(await read(api, dispute_id))
    if current.status == DisputeStatus.lost:
        return current  # accepted already: by our earlier attempt, or lost anyway
    require_unanswered(current)
    closed = await api.get(
        lambda: api.v1.disputes.close_async(dispute_id, options={"idempotency_key": key}),
        f"accepting dispute {dispute_id}",
    )
    return parse_dispute(closed)


async def submit(api: StripeAPI, dispute_id: str, evidence: Evidence, key: str) -> Dispute:
    raw = await read(api, dispute_id)
    current = parse_dispute(raw)
    if metadata_of(raw).get(KEY_META) == key:
        return current  # our evidence is there already: a retry after a lost answer
    require_unanswered(current)
    uploaded = {}
    for field, file in evidence_files(evidence).items():
        content = io.BytesIO(file.content())
        content.name = file.filename
        created = await api.get(
            lambda content=content, field=field: api.v1.files.create_async(
                {"purpose": "dispute_evidence", "file": content},
                {"idempotency_key": f"{key}:{field}"},
            ),
            f"uploading {file.filename}",
        )
        uploaded[field] = created["id"]
    updated = await api.get(
        lambda: api.v1.disputes.update_async(
            dispute_id,
            {
                "evidence": stripe_evidence(evidence, uploaded),
                "metadata": {KEY_META: key},
                "submit": True,
            },
            {"idempotency_key": key},
        ),
        f"the evidence for dispute {dispute_id}",
    )
    return parse_dispute(updated)
