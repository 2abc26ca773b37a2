"""Regenerate the pruned Intercom OpenAPI description beside this file.

It keeps only the operations the emulator serves (`GET /me`, `GET /conversations/{id}`,
`POST /conversations/{id}/reply`) and the components they reference, from Intercom's
published 2.16 description (MIT, see LICENSE and SOURCE).
Run: `python emulators/chargedesk_emulators/data/intercom/extract.py /path/to/api.intercom.io_2.16.yaml`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from chargedesk_emulators.openapi_subset import components, referenced

HERE = Path(__file__).resolve().parent
USED = {
    "/me": ["get"],
    "/conversations/{conversation_id}": ["get"],
    "/conversations/{conversation_id}/reply": ["post"],
}


def main(source: str) -> None:
    spec = yaml.safe_load(Path(source).read_text())
    paths = {p: {m: spec["paths"][p][m] for m in methods} for p, methods in USED.items()}
    found = referenced(spec, paths)
    pruned = {
        "openapi": spec["openapi"],
        "info": {
            **spec["info"],
            "description": "Pruned by ChargeDesk (extract.py) to the "
            "operations its emulator serves; original: Intercom-OpenAPI (see SOURCE), MIT.",
        },
        "servers": spec.get("servers", [{"url": "https://api.intercom.io"}]),
        "paths": paths,
        "components": components(found)
        | {"securitySchemes": spec["components"].get("securitySchemes", {})},
        "security": spec.get("security", []),
    }
    (HERE / "conversations_notes.json").write_text(json.dumps(pruned, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
