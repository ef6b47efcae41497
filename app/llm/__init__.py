"""The model layer: which models exist (the catalogue) and how to talk to the servers behind them.

Features above it (conversations, chat, health) ask `get_llm()` for both;
nothing here knows about conversations, users or HTTP routes of our own.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from .catalogue import Catalogue, CatalogueError, NotAChatModel, UnknownModel, load_catalogue
from .errors import ProviderError, ProviderTimeout, UnsupportedParameter
from .pool import PROVIDER_KINDS, ProviderPool
from .pricing import cost_of
from .types import Completion, Embeddings, GenerationOptions, ModelSpec, Timeouts, ToolCall, Usage

__all__ = [
    "cost_of",
    "LLM", "Catalogue", "CatalogueError", "load_catalogue", "Completion", "Embeddings", "GenerationOptions", "ModelSpec",
    "NotAChatModel", "PROVIDER_KINDS", "ProviderError", "ProviderPool", "ProviderTimeout", "Timeouts", "ToolCall",
    "UnknownModel", "UnsupportedParameter", "Usage", "get_llm", "init_app",
]


@dataclass(frozen=True)
class LLM:
    catalogue: Catalogue
    providers: ProviderPool


def init_app(app: Flask) -> None:
    # A bad catalogue stops the app here, with the reason.
    app.extensions["llm"] = LLM(catalogue=load_catalogue(app.config["SETTINGS"]), providers=ProviderPool())


def get_llm() -> LLM:
    return current_app.extensions["llm"]
