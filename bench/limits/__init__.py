"""What each limit costs on the hot path: `python -m bench.limits` (see run.py)."""
from .run import main

__all__ = ["main"]
