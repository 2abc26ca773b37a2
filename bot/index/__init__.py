"""The billing index: every gateway's objects mirrored into SQL for search and reports.

`rows` turns our models into rows, `store` writes them, `sync` backfills and keeps
up each gateway page by page, `listener` writes what webhooks and the bot's own actions say.
"""
