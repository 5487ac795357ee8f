"""Periodic housekeeping (``stich maintenance run``): expired credentials, apps past their
restore window, and audit entries and raw view events past retention. See
docs/operations.md for running it from cron or a systemd timer."""
