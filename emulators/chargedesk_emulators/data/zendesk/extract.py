"""Write schemas.json: the schemas the Zendesk emulator answers with, from Zendesk's OAS.

Run once from a checkout holding the published file (see SOURCE):
    python extract.py /path/to/openapi.yaml
It keeps the named component schemas and every schema they refer to, unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

WANTED = (
    "TicketCommentObject",
    "TicketCommentsResponse",
    "AuditObject",
    "TicketUpdateRequest",
    "TicketResponse",
    "UserResponse",
)


class _Loader(yaml.SafeLoader):
    pass


# The file has unquoted `=` values, which YAML 1.1 tags as `value`: read them as strings.
_Loader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def main(source: str) -> None:
    schemas = yaml.load(Path(source).read_text(), Loader=_Loader)["components"]["schemas"]
    kept: dict[str, Any] = {}
    todo = list(WANTED)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = schemas[name]
        todo += sorted(_refs(schemas[name]) - kept.keys())
    out = Path(__file__).with_name("schemas.json")
    out.write_text(
        json.dumps({"components": {"schemas": dict(sorted(kept.items()))}}, indent=1, default=str)
        + "\n"
    )


if __name__ == "__main__":
    main(sys.argv[1])
