"""Discord: the adapter (discord.py client, /billing command tree, components) and its embed renderer."""
