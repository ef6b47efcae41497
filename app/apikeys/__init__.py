"""API keys: create, list and revoke them; an org's OWNER/ADMIN manages the keys scoped to it."""
