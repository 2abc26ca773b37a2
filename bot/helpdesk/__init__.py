"""Helpdesk doors: a package per helpdesk (webhooks, notes API client, app endpoints)."""
