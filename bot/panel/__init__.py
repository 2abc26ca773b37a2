"""The agent panel: the billing card beside the ticket, embedded in Zendesk, Front and Freshdesk."""
