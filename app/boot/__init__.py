"""What the gunicorn master runs before any worker starts."""
