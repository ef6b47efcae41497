"""What the gunicorn master runs before any worker starts, and how it stops them (draining)."""
