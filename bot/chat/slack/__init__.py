"""Slack: the adapter (slack-bolt listeners, approval copies in threads) and its Block Kit renderer."""
