"""ChargeDesk Bot: billing support from chat, across payment gateways."""

__version__ = "0.1.0"
