"""The README's gateway table is the one the gateway classes generate."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from bot.gateways.base import Capability, Gateway
from bot.gateways.matrix import BUILT_IN, cell, in_readme, table, with_table
from tests.conftest import REPO

README = REPO / "README.md"
REFRESH = "python -m bot.gateways.matrix --write README.md"


def test_readme_capability_matrix_is_the_generated_one() -> None:
    shown = in_readme(README.read_text())
    assert shown is not None, "README.md lost its capability-matrix markers"
    assert shown == table(), (
        f"README.md's gateway table is out of date with the gateway classes: run `{REFRESH}`"
    )


def test_every_capability_has_a_row_with_a_label() -> None:
    rows = table().splitlines()[2:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [c.label for c in Capability]


@pytest.mark.parametrize("gateway", BUILT_IN, ids=lambda g: g.name)
def test_a_gateways_limits_name_only_what_it_can_do(gateway: type[Gateway]) -> None:
    assert set(gateway.limits) <= gateway.capabilities


def test_a_declared_limit_replaces_yes_in_its_cell() -> None:
    class Partial(Gateway):
        name = "partial"
        capabilities = frozenset({Capability.refund})
        limits = MappingProxyType({Capability.refund: "full refunds only"})

    assert cell(Partial, Capability.refund) == "full refunds only"
    assert cell(Partial, Capability.void) == "no"
    assert "| `partial` |" in table([Partial]).splitlines()[0]


def test_writing_replaces_only_what_stands_between_the_markers() -> None:
    text = (
        "intro\n<!-- capability-matrix:start (x) -->\nold\n<!-- capability-matrix:end -->\nrest\n"
    )
    assert with_table(text, "new\n") == text.replace("old\n", "new\n")
