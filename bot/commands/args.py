"""Argument types shared by commands: validated before any command runs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# `ch_123` or `ledger:ch_123` (naming the gateway when an ID exists in several).
ObjectRef = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        pattern=r"^([a-z][a-z0-9_-]{0,39}:)?[A-Za-z0-9][A-Za-z0-9_.\-]{1,99}$",
    ),
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1000)]
AmountText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
