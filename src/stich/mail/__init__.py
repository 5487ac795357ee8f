"""Outgoing mail: messages from templates, SMTP or an outbox directory, sent after commit."""
