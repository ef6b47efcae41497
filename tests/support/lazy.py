"""Modules imported on first use, for test modules whose client libraries are slow to import.

Every pytest-xdist process imports every test module to collect it: `openai` and langchain-openai
at module level cost each process about a second, though one process runs those tests.
"""
import importlib


class Lazy:
    """Stands for the module `name` and imports it on the first attribute read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)
