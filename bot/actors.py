"""Who is acting, and where."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Role(StrEnum):
    customer = "customer"
    agent = "agent"
    manager = "manager"
    admin = "admin"


# A role carries the ones below it: a manager can do what an agent can.
_IMPLIED: dict[Role, frozenset[Role]] = {
    Role.customer: frozenset({Role.customer}),
    Role.agent: frozenset({Role.agent}),
    Role.manager: frozenset({Role.manager, Role.agent}),
    Role.admin: frozenset({Role.admin, Role.manager, Role.agent}),
}


def expand_roles(roles: set[Role] | frozenset[Role]) -> frozenset[Role]:
    """The roles given plus those they imply; nobody has none (customer at most)."""
    expanded = frozenset().union(*(_IMPLIED[r] for r in roles)) if roles else frozenset()
    return expanded or frozenset({Role.customer})


class ChannelKind(StrEnum):
    internal = "internal"
    helpdesk = "helpdesk"
    shared = "shared"


class Actor(BaseModel):
    """A person acting through one platform."""

    model_config = ConfigDict(frozen=True)

    platform: str
    id: str
    name: str
    email: str | None = None
    roles: frozenset[Role] = Field(default_factory=lambda: frozenset({Role.customer}))

    @field_validator("roles", mode="after")
    @classmethod
    def _expand(cls, roles: frozenset[Role]) -> frozenset[Role]:
        return expand_roles(roles)

    @property
    def key(self) -> str:
        """Stable identity across one platform: `shell:maria`, `slack:U123`."""
        return f"{self.platform}:{self.id}"

    def has(self, role: Role) -> bool:
        return role in self.roles

    def label(self) -> str:
        return f"{self.name} ({self.key})"


class Channel(BaseModel):
    model_config = ConfigDict(frozen=True)

    platform: str
    id: str
    kind: ChannelKind = ChannelKind.internal
