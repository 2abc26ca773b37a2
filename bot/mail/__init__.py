"""Email: messages built once (message.py), queued durably in SQL (outbox.py), sent over SMTP or to a folder (transport.py)."""
