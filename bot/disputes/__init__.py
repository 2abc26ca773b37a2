"""Disputes (chargebacks): the evidence we hold, what we send, and reminders before it is due."""
