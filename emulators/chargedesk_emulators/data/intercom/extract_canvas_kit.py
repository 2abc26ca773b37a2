"""Regenerate canvas_kit.json beside this file: Intercom's Canvas Kit objects.

It keeps the initialize and submit responses of an inbox app and every schema they
reference (canvas, content, components, actions), from Intercom's published 2.11
description, the only one with the Canvas Kit objects (MIT, see LICENSE and SOURCE);
the tests validate every canvas the bot draws against them. The requests are left out:
they reference schemas the 2.11 file does not define (`custom_attributes`).
Run: `python emulators/chargedesk_emulators/data/intercom/extract_canvas_kit.py /path/to/api.intercom.io_2.11.yaml`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from chargedesk_emulators.openapi_subset import names, referenced

HERE = Path(__file__).resolve().parent
ROOTS = ("initialize_response", "submit_response")


def main(source: str) -> None:
    spec = yaml.safe_load(Path(source).read_text())
    roots = [{"$ref": f"#/components/schemas/{name}"} for name in ROOTS]
    kept = names(referenced(spec, roots, prefix="#/components/schemas/"))
    pruned = {
        "openapi": spec["openapi"],
        "info": {
            "title": spec["info"]["title"],
            "version": spec["info"]["version"],
            "description": "Canvas Kit objects pruned by ChargeDesk (extract_canvas_kit.py); "
            "original: Intercom-OpenAPI 2.11 (see SOURCE), MIT.",
        },
        "components": {"schemas": kept},
    }
    (HERE / "canvas_kit.json").write_text(json.dumps(pruned, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
