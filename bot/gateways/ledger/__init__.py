"""The built-in ledger gateway, one job per module.

`mapping` (pure: ledger rows to our models), `gateway` (the `LedgerGateway` class),
`forward` (the signed forward webhook to the business), `importer` (`chargedesk
import`: JSON and CSV into the ledger's tables).
"""

from bot.gateways.ledger.forward import SIGNATURE_HEADER, Forwarder, sign
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.ledger.mapping import NAME

__all__ = ["NAME", "SIGNATURE_HEADER", "Forwarder", "LedgerGateway", "sign"]
