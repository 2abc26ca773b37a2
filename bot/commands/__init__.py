"""Everything a user can do, written once, with no chat SDK in sight.

Importing this package registers every command with the router.
"""

from bot.commands import (  # noqa: F401
    again,
    alerts,
    approvals,
    audit,
    cancel,
    capture,
    charge,
    coupon,
    customer,
    customer_details,
    dispute,
    documents,
    help,
    lookup,
    pause,
    pay_request,
    plan,
    refund,
    reissue,
    report,
    subscribe,
    verified,
    void,
)
from bot.commands.router import COMMANDS, Context, dispatch, run

__all__ = ["COMMANDS", "Context", "dispatch", "run"]
