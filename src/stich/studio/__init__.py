"""Stich Studio: the admin UI in the browser (sqladmin over every table).

Admins sign in with their Stich account; tables are browsable, searchable, filterable
and sortable, credential columns are never shown, and the changes an admin can make go
through the services and into the audit log. See docs/operations.md.
"""

from stich.studio.app import create_studio_app, mount_studio

__all__ = ["create_studio_app", "mount_studio"]
