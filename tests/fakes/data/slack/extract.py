"""Regenerate `web_api.json` beside this file: the Slack Web API methods the fake serves.

It keeps only those methods, and the definitions they reference, from Slack's
published OpenAPI 2.0 description (MIT, see LICENSE and SOURCE), with the
corrections listed in `correct()`. `event_wrapper_schema.json` is copied as is.
Run: `python tests/fakes/data/slack/extract.py /path/to/specs/slack`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODIFIED = (
    "Pruned by ChargeDesk (tests/fakes/data/slack/extract.py) to the methods its fake Slack "
    "Web API serves, with the corrections listed there; original: slackapi/slack-api-specs "
    "(see SOURCE), MIT (see LICENSE)."
)
USED = (
    "auth.test",
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
    "views.open",
    "views.update",
    "conversations.info",
    "usergroups.users.list",
    "users.info",
)


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            found.add(ref.removeprefix("#/definitions/"))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _alternatives(node: Any) -> Any:
    """Slack writes "one of these" as `items: [A, B]` on a non-array: JSON Schema ignores that.

    Rewritten as `anyOf: [A, B]`, so validating against the description checks something.
    """
    if isinstance(node, dict):
        out = {k: _alternatives(v) for k, v in node.items()}
        items = out.get("items")
        if isinstance(items, list) and out.get("type") != "array":
            del out["items"]
            out["anyOf"] = items
        return out
    if isinstance(node, list):
        return [_alternatives(v) for v in node]
    return node


def prune(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {f"/{method}": spec["paths"][f"/{method}"] for method in USED}
    definitions: dict[str, Any] = {}
    pending: set[str] = set()
    _refs(paths, pending)
    while pending:
        name = pending.pop()
        if name in definitions:
            continue
        definitions[name] = spec["definitions"][name]
        _refs(definitions[name], pending)
    return {
        "swagger": spec["swagger"],
        "info": {**spec["info"], "x-modified": MODIFIED},
        "host": spec["host"],
        "basePath": spec["basePath"],
        "paths": _alternatives(paths),
        "definitions": _alternatives(dict(sorted(definitions.items()))),
    }


def correct(pruned: dict[str, Any]) -> None:
    """Where the 2021 description contradicts what Slack sends today, follow Slack (and say so)."""
    update = pruned["paths"]["/chat.update"]["post"]["responses"]["200"]["schema"]
    # chat.update answers with the message's blocks as an array, like every other method.
    update["properties"]["message"]["properties"]["blocks"] = {"$ref": "#/definitions/blocks"}
    # Errors Slack documents for these methods today that the 2021 enums lack.
    newer = {
        "chat.postMessage": ["invalid_blocks"],
        "chat.postEphemeral": ["invalid_blocks"],
        "chat.update": ["invalid_blocks"],
        "usergroups.users.list": ["no_such_subteam"],
    }
    for method, errors in newer.items():
        operation = next(iter(pruned["paths"][f"/{method}"].values()))
        operation["responses"]["default"]["schema"]["properties"]["error"]["enum"] += errors


def main(source: Path) -> None:
    spec = json.loads((source / "web_api_openapi_v2.json").read_text())
    pruned = prune(spec)
    correct(pruned)
    out = HERE / "web_api.json"
    out.write_text(json.dumps(pruned, indent=1) + "\n")
    print(f"{out.name}: {out.stat().st_size} bytes")
    wrapper = (source / "event_wrapper_schema.json").read_text()
    (HERE / "event_wrapper_schema.json").write_text(wrapper)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
