"""Errors that end a command with a precise one-line message to the user."""

from __future__ import annotations


class UserError(Exception):
    """Refused or failed, for a reason the user should read; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
