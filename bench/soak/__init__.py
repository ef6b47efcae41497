"""Mixed traffic for a set time, then checks that nothing went quietly wrong: `python -m bench.soak` (see run.py)."""
from .run import main

__all__ = ["main"]
