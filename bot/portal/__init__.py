"""The customers' billing pages: signed links, sign-in by email code, Starlette + Jinja2."""
