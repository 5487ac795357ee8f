"""``stich import original``: bring a database of the original system (Drizzle on SQLite /
Cloudflare D1) into Stich. See docs/import.md for what maps to what."""
