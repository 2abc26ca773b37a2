"""Doors: the ways into the bot (chat platforms, the shell, helpdesks), each a subclass of `Door`."""
