"""What every gateway backend hands the contract suite (tests/gateways/test_contract.py).

A backend is an async context manager yielding a ContractEnv: the gateway under
test, wired to its real SDK and an HTTP-level emulator on 127.0.0.1, plus the
IDs of objects it seeded for the suite:

- one customer (`email`, `customer_id`) owning everything below;
- `charge_id`: a succeeded, captured charge of 100.00 in `currency`, nothing refunded;
- `authorized_ids`: two authorized (uncaptured) charges of 50.00 in `currency`;
- `subscription_ids`: two active subscriptions.

`skips` names the behaviours (test function names without `test_`) a backend
cannot run, each with the reason (localstripe, for one, accepts over-refunds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.gateways.base import Capability, Gateway


@dataclass
class ContractEnv:
    gateway: Gateway
    email: str
    customer_id: str
    currency: str
    charge_id: str
    authorized_ids: tuple[str, str]
    subscription_ids: tuple[str, str]
    unsupported: Capability | None = None  # a capability this gateway lacks, if any
    skips: dict[str, str] = field(default_factory=dict)
