"""The terminal: `chargedesk shell`, its adapter and its text renderer."""
