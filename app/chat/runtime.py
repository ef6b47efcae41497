"""What the chat endpoints need from start-up: the catalogue, the provider pool and two settings."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from .catalogue import Catalogue, load_catalogue
from .providers import ProviderPool


@dataclass(frozen=True)
class ChatRuntime:
    catalogue: Catalogue
    providers: ProviderPool
    context_budget: int
    heartbeat_seconds: float


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.extensions["chat"] = ChatRuntime(
        catalogue=load_catalogue(settings),  # a bad catalogue stops the app here, with the reason
        providers=ProviderPool(),
        context_budget=settings.context_token_budget,
        heartbeat_seconds=settings.heartbeat_seconds,
    )


def get_runtime() -> ChatRuntime:
    return current_app.extensions["chat"]
