"""Payment gateways behind one protocol (see base.py)."""
