"""Approval policy (`policy.toml`): who may ask, what they may do alone, who approves.

Without a policy file every action needs one manager's approval: the safe default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.actors import Actor, People, Role
from bot.approvals.actions import ACTIONS
from bot.money import Money, MoneyError, normalize_currency, parse_money
from bot.settings import ConfigError, config_dir, describe_validation_error, read_toml

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# Most senior first: the policy line for the actor's highest role applies.
_SENIORITY = (Role.admin, Role.manager, Role.agent)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration: write 30m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


Amounts = dict[str, Money]


def _amounts(raw: dict[str, Any]) -> dict[str, Amounts]:
    """`{role: {currency: "50.00"}}` parsed into exact money per currency."""
    parsed: dict[str, Amounts] = {}
    for role, per_currency in raw.items():
        Role(role)  # raises ValueError naming the bad role
        parsed[role] = {}
        for code, text in per_currency.items():
            try:
                code = normalize_currency(code)
                parsed[role][code] = parse_money(str(text), code)
            except MoneyError as exc:
                raise ValueError(f"{role}.{code}: {exc}") from None
    return parsed


class ActionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    requesters: list[Role] = Field(default_factory=lambda: [Role.agent])
    approver_role: Role = Role.manager
    approvals: int = Field(1, ge=1, le=10, description="N distinct approvers needed")
    expires: timedelta = timedelta(hours=24)
    reason_codes: list[str] = Field(default_factory=list)
    alone_roles: list[Role] = Field(
        default_factory=list, description="for actions without an amount"
    )
    limits: dict[str, Amounts] = Field(default_factory=dict, description="per request, per role")
    daily_budget: dict[str, Amounts] = Field(
        default_factory=dict, description="per day, per person"
    )

    @field_validator("expires", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("limits", "daily_budget", mode="before")
    @classmethod
    def _money(cls, value: Any) -> Any:
        return _amounts(value) if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _approver_is_senior(self) -> ActionPolicy:
        if self.approver_role not in (Role.manager, Role.admin):
            raise ValueError("approver_role must be manager or admin")
        return self

    @model_validator(mode="after")
    def _viewers_move_no_money(self) -> ActionPolicy:
        named = {*self.requesters, *self.alone_roles, *self.limits, *self.daily_budget}
        if Role.viewer in named:
            raise ValueError("viewer is read-only: it cannot request, act alone or have a limit")
        return self

    def may_request(self, actor: Actor) -> bool:
        return any(actor.has(role) for role in self.requesters)

    def _line(self, table: dict[str, Amounts], actor: Actor, currency: str) -> Money | None:
        for role in _SENIORITY:
            if actor.has(role) and currency in table.get(role.value, {}):
                return table[role.value][currency]
        return None

    def limit_for(self, actor: Actor, currency: str) -> Money | None:
        return self._line(self.limits, actor, currency)

    def budget_for(self, actor: Actor, currency: str) -> Money | None:
        return self._line(self.daily_budget, actor, currency)


class CouponPolicy(ActionPolicy):
    """`[coupon]`: `limits` cap an amount off per currency and `max_percent_off` a percentage
    off, per role; above the requester's cap, `approver_role` approves. `alone_roles` may
    remove a discount (or apply a coupon that is neither) without approval."""

    max_percent_off: dict[str, Decimal] = Field(default_factory=dict, description="per role")

    @field_validator("max_percent_off", mode="before")
    @classmethod
    def _percents(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        parsed: dict[str, Decimal] = {}
        for role, cap in value.items():
            if Role(role) == Role.viewer:
                raise ValueError("viewer is read-only: it cannot have a cap")
            try:
                parsed[role] = Decimal(str(cap))
            except InvalidOperation:
                raise ValueError(f"{role}: {cap!r} is not a percentage") from None
            if isinstance(cap, bool) or not 0 <= parsed[role] <= 100:
                raise ValueError(f"{role}: {cap!r} is not a percentage from 0 to 100")
        return parsed

    def percent_cap_for(self, actor: Actor) -> Decimal | None:
        return next(
            (self.max_percent_off[r.value] for r in _SENIORITY
             if actor.has(r) and r.value in self.max_percent_off),
            None,
        )  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """What the policy says of one request before anyone approves."""

    alone: bool
    why: str
    budget: Money | None = None


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refund: ActionPolicy = ActionPolicy()
    cancel: ActionPolicy = ActionPolicy()
    capture: ActionPolicy = ActionPolicy()
    void: ActionPolicy = ActionPolicy()
    dispute: ActionPolicy = ActionPolicy()
    coupon: CouponPolicy = CouponPolicy()
    subscribe: ActionPolicy = ActionPolicy()
    plan: ActionPolicy = ActionPolicy()
    pause: ActionPolicy = ActionPolicy()
    resume: ActionPolicy = ActionPolicy()
    charge: ActionPolicy = ActionPolicy()
    tax_id: ActionPolicy = ActionPolicy()  # the `tax-id` action
    address: ActionPolicy = ActionPolicy()
    name: ActionPolicy = ActionPolicy()
    people: dict[str, list[str]] = Field(
        default_factory=dict,
        description="one person's identities on every platform, by email: "
        '"alex@example.com" = ["slack:U0123ABC", "discord:4242", "shell:alex"]',
    )

    @field_validator("people")
    @classmethod
    def _identities(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for email, identities in value.items():
            if "@" not in email:
                raise ValueError(f"{email!r}: name each person by their email")
            for identity in identities:
                platform, _, ident = identity.partition(":")
                if not platform.strip() or not ident.strip():
                    raise ValueError(
                        f"{email}: {identity!r} is not PLATFORM:ID (slack:U0123ABC, shell:alex)"
                    )
        People(value)  # raises naming an identity declared for two people
        return value

    def person(self, key: str) -> str:
        """Who is behind a `platform:id` identity: `person:<email>` if declared, else the
        identity normalised. Key anything counted per person (budgets) by this."""
        return People(self.people).person(key)

    def same_person(self, a: str, b: str) -> bool:
        """Are these `platform:id` identities one person (declared, or the same name normalised)?"""
        return People(self.people).same(a, b)  # a few entries: built per vote, never stale

    def for_action(self, action: str) -> ActionPolicy:
        if action not in ACTIONS:
            raise KeyError(action)
        return getattr(self, action.replace("-", "_"))  # `tax-id` is the table [tax_id]

    def decide(
        self, action: str, actor: Actor, amount: Money | None, percent_off: str | None = None
    ) -> Decision:
        """Whether the actor may do this alone (subject to their daily budget) or needs approval.

        `percent_off` (a coupon's, as exact text: "12.5") is held against `max_percent_off`."""
        rules = self.for_action(action)
        approvers = f"{rules.approvals} {rules.approver_role.value}" + (
            "s" if rules.approvals > 1 else ""
        )
        if percent_off is not None:
            percent = Decimal(percent_off)
            cap = rules.percent_cap_for(actor) if isinstance(rules, CouponPolicy) else None
            if cap is None or percent > cap:
                above = f" is above your cap of {cap.normalize():f}%" if cap is not None else ""
                why = f"{percent.normalize():f}% off{above}: needs approval by {approvers}"
                return Decision(False, why)
            return Decision(True, f"within your cap of {cap.normalize():f}% off")
        money_rules = ACTIONS[action].amount_rules
        if amount is not None and money_rules is not None:
            # Alone only if the actor may do the action alone AND move this much alone
            # (a cancellation that refunds: the refund table's limit and daily budget).
            alone = self.decide(action, actor, None)
            if not alone.alone:
                return Decision(False, f"{alone.why}, as it moves {amount.format()}")
            return self.decide(money_rules, actor, amount)
        if amount is None:
            if any(actor.has(role) for role in rules.alone_roles):
                return Decision(True, f"your role may {action} without approval")
            return Decision(False, f"{action} needs approval by {approvers}")
        limit = rules.limit_for(actor, amount.currency)
        if limit is None:
            return Decision(False, f"{action}s in {amount.currency} need approval by {approvers}")
        if amount.minor > limit.minor:
            return Decision(
                False,
                f"{amount.format()} is above your limit of {limit.format()}: needs approval by {approvers}",
            )
        return Decision(
            True, f"within your limit of {limit.format()}", rules.budget_for(actor, amount.currency)
        )


def load_policy(path: Path | None = None) -> Policy:
    """Read a policy file (default: the configuration folder's policy.toml).

    A missing file or folder gives the safe default: everything needs a manager.
    """
    if path is None:
        folder = config_dir()
        if folder is None:
            return Policy()
        path = folder / "policy.toml"
    raw = read_toml(path)
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from None
