"""Who is acting, and where."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Role(StrEnum):
    customer = "customer"
    agent = "agent"
    manager = "manager"
    admin = "admin"
    # Staff who read the finance reports (`report …`) and nothing else; managers read them too.
    finance = "finance"
    # Staff who may see billing cards and nothing more (a helpdesk agent whose email is in
    # no role list): not a customer, never an agent; the router lets them only look up.
    viewer = "viewer"


# A role carries the ones below it: a manager can do what an agent can.
# `viewer` implies nothing and nothing implies it: it adds no power to any other role.
_IMPLIED: dict[Role, frozenset[Role]] = {
    Role.customer: frozenset({Role.customer}),
    Role.viewer: frozenset({Role.viewer}),
    Role.finance: frozenset({Role.finance}),
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


# Characters that render as nothing (zero-width spaces and joiners, soft hyphens, bidi marks)
# or are controls: a name padded with them must still be the same name.
_INVISIBLE = frozenset({"Cf", "Cc", "Cn", "Co", "Cs"})


def normalize_identity(text: str) -> str:
    """The form identities compare in: NFKC, case-folded, without invisible characters,
    whitespace trimmed and collapsed. `ALEX`, ` alex `, `ａｌｅｘ` and `al\u200bex` are one.

    Comparing more names as equal only ever refuses more (four-eyes), never allows more.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    visible = "".join(
        " " if ch.isspace() else ch
        for ch in folded
        if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE
    )
    return " ".join(visible.split())


def identity_key(key: str) -> str:
    """A `platform:id` identity in its normalised form (`Shell: ALEX` -> `shell:alex`)."""
    platform, _, ident = key.partition(":")
    return f"{normalize_identity(platform)}:{normalize_identity(ident)}"


class People:
    """Who is who across platforms: each declared person (by email) with their identities.

    `person()` names the person behind an identity: the declared person's email,
    or, for an identity nobody declared, the identity itself, normalised. Four-eyes
    compares these, so one person never approves on one platform what they asked
    for on another, nor under a spelling of their own name.
    """

    def __init__(self, people: Mapping[str, Iterable[str]] | None = None) -> None:
        self._person: dict[str, str] = {}
        for email, identities in (people or {}).items():
            person = f"person:{normalize_identity(email)}"
            for identity in identities:
                key = identity_key(identity)
                other = self._person.get(key)
                if other is not None and other != person:
                    raise ValueError(
                        f"{identity!r} is declared for both {other.removeprefix('person:')} "
                        f"and {email}"
                    )
                self._person[key] = person

    def person(self, key: str) -> str:
        """`person:<email>` for a declared identity, else the normalised `platform:id`."""
        normalized = identity_key(key)
        return self._person.get(normalized, normalized)

    def same(self, a: str, b: str) -> bool:
        """Are these two `platform:id` identities one person?"""
        return self.person(a) == self.person(b)


class Channel(BaseModel):
    model_config = ConfigDict(frozen=True)

    platform: str
    id: str
    kind: ChannelKind = ChannelKind.internal


# The bot itself: expiry, recovery and automatic documents act as it.
SYSTEM = Actor(platform="system", id="chargedesk", name="ChargeDesk", roles=frozenset({Role.admin}))
