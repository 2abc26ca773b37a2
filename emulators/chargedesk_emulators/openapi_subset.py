"""The part of a published API description that an emulator serves.

The `data/*/extract.py` scripts keep a few operations of a provider's OpenAPI (or Swagger
2.0) description; these functions find what those operations refer to: every object
reached through `$ref`s, directly or through another object kept, found in the description
by its JSON pointer (`#/components/schemas/Name`, `#/definitions/Name`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def refs(node: Any, prefix: str = "#/") -> set[str]:
    """Every `$ref` in `node` (a JSON tree) that starts with `prefix`."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix):
            found.add(ref)
        for value in node.values():
            found |= refs(value, prefix)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value, prefix)
    return found


def referenced(
    spec: dict[str, Any],
    node: Any,
    *,
    prefix: str = "#/components/",
    load: Callable[[Any], Any] = lambda value: value,
) -> dict[str, Any]:
    """Every object of `spec` that `node` refers to through `$ref`s starting with `prefix`,
    directly or through another such object: {ref: load(object)}. `load` may change an
    object before its own references are followed (drop its examples, say)."""
    found: dict[str, Any] = {}
    pending = refs(node, prefix)
    while pending:
        ref = pending.pop()
        if ref in found:
            continue
        target: Any = spec
        for step in ref.removeprefix("#/").split("/"):
            target = target[step]
        found[ref] = load(target)
        pending |= refs(found[ref], prefix)
    return found


def components(
    found: dict[str, Any], also: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """`#/components/<section>/<name>` objects (`referenced`'s answer) as an OpenAPI
    `components` object, with the sections in `also` added, every level sorted by name."""
    sections: dict[str, dict[str, Any]] = {}
    for ref, value in found.items():
        _, _, section, name = ref.split("/", 3)
        sections.setdefault(section, {})[name] = value
    sections.update(also or {})
    return {k: dict(sorted(v.items())) for k, v in sorted(sections.items())}


def names(found: dict[str, Any]) -> dict[str, Any]:
    """Objects found by `referenced` under their own names (the last step of their ref),
    sorted by name: `definitions` of a Swagger 2.0 description, or one components section."""
    named = {ref.rsplit("/", 1)[1]: value for ref, value in found.items()}
    return dict(sorted(named.items()))
