"""What the gateway adds on top of the model server: `python -m bench.overhead` (see run.py)."""
from .run import main

__all__ = ["main"]
