"""How many chats the gateway holds at once: `python -m bench.concurrency` (see run.py)."""
from .run import main

__all__ = ["main"]
