"""Regenerate `web_api.json` beside this file: the Slack Web API methods the fake serves.

It keeps only those methods, and the definitions they reference, from Slack's
published OpenAPI 2.0 description (MIT, see LICENSE and SOURCE), with the
corrections listed in `correct()`, plus the methods Slack added after 2021 that
the fake serves (`NEWER`, written from their reference pages on docs.slack.dev).
`event_wrapper_schema.json` is copied as is.
Run: `python emulators/chargedesk_emulators/data/slack/extract.py /path/to/specs/slack`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chargedesk_emulators.openapi_subset import names, referenced

HERE = Path(__file__).resolve().parent
MODIFIED = (
    "Pruned by ChargeDesk (emulators/chargedesk_emulators/data/slack/extract.py) to the methods its fake Slack "
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
    "conversations.open",
    "usergroups.users.list",
    "users.info",
)


_COMMON_ERRORS = [
    "not_authed", "invalid_auth", "account_inactive", "token_revoked", "no_permission",
    "missing_scope", "invalid_arguments", "invalid_arg_name", "invalid_charset",
    "invalid_form_data", "invalid_post_type", "missing_post_type", "request_timeout",
    "ratelimited", "internal_error", "fatal_error",
]  # fmt: skip


def _method(
    description: str,
    url: str,
    parameters: list[tuple[str, str, bool]],
    success: dict[str, Any],
    errors: list[str],
) -> dict[str, Any]:
    """An operation in the description's own shape, for a method it does not have."""
    return {
        "post": {
            "consumes": ["application/x-www-form-urlencoded", "application/json"],
            "description": description,
            "externalDocs": {"description": "API method documentation", "url": url},
            "parameters": [
                {"in": "header", "name": "token", "type": "string",
                 "description": "Authentication token. Requires scope: `files:write`"},
                *({"in": "formData", "name": name, "type": kind, "required": required}
                  for name, kind, required in parameters),
            ],
            "produces": ["application/json"],
            "responses": {
                "200": {"description": "Typical success response", "schema": {
                    "type": "object", "required": ["ok", *success["required"]],
                    "properties": {"ok": {"$ref": "#/definitions/defs_ok_true"},
                                   "response_metadata": {"type": "object"}, **success["properties"]},
                    "additionalProperties": False,
                }},
                "default": {"description": "Typical error response", "schema": {
                    "type": "object", "required": ["ok", "error"], "additionalProperties": False,
                    "properties": {"ok": {"$ref": "#/definitions/defs_ok_false"},
                                   "error": {"type": "string", "enum": [*errors, *_COMMON_ERRORS]},
                                   "response_metadata": {"type": "object"}},
                }},
            },
            "x-chargedesk": "written from the method's reference page: not in the 2021 description",
        }
    }  # fmt: skip


# Methods Slack added after the 2021 description, as their reference pages give them
# (docs.slack.dev/reference/methods/<method>): the two steps around an upload's POST.
NEWER: dict[str, dict[str, Any]] = {
    "files.getUploadURLExternal": _method(
        "Gets a URL for an edge external file upload",
        "https://docs.slack.dev/reference/methods/files.getUploadURLExternal",
        [("filename", "string", True), ("length", "integer", True),
         ("alt_txt", "string", False), ("snippet_type", "string", False)],
        {"required": ["upload_url", "file_id"],
         "properties": {"upload_url": {"type": "string", "format": "uri"},
                        "file_id": {"$ref": "#/definitions/defs_file_id"}}},
        [],
    ),
    "files.completeUploadExternal": _method(
        "Finishes an upload started with files.getUploadURLExternal",
        "https://docs.slack.dev/reference/methods/files.completeUploadExternal",
        [("files", "string", True), ("channel_id", "string", False), ("channels", "string", False),
         ("initial_comment", "string", False), ("thread_ts", "string", False),
         ("blocks", "string", False)],
        {"required": ["files"],
         "properties": {"files": {"type": "array", "minItems": 1, "items": {
             "type": "object", "required": ["id"],
             "properties": {"id": {"$ref": "#/definitions/defs_file_id"}, "title": {"type": "string"}},
         }}}},
        ["file_not_found", "channel_not_found", "not_in_channel", "access_denied"],
    ),
}  # fmt: skip


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
    paths |= {f"/{method}": operation for method, operation in NEWER.items()}
    definitions = names(referenced(spec, paths, prefix="#/definitions/"))
    return {
        "swagger": spec["swagger"],
        "info": {**spec["info"], "x-modified": MODIFIED},
        "host": spec["host"],
        "basePath": spec["basePath"],
        "paths": _alternatives(paths),
        "definitions": _alternatives(definitions),
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
