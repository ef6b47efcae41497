"""Failover benchmark: three upstreams under load, one killed and restarted (`python -m bench.failover`)."""
from .run import main

__all__ = ["main"]
