"""Prometheus metrics. Kept import-light: the gunicorn master imports `multiprocess` before any worker exists."""
