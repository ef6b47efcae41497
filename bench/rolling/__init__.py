"""Rolling restarts under load lose nothing: `python -m bench.rolling` (see run.py)."""
from .run import main

__all__ = ["main"]
