"""Upstreams: the servers behind each catalogue model, how calls are spread over them, and failover.

`get_router()` is what the chat, /v1 and embeddings code calls instead of a
provider client: it picks the upstream (router.py), fails over before the
first token (router.py, streams.py), and keeps each upstream's health in this
worker (health.py).
"""
from __future__ import annotations

from flask import Flask, current_app

from ..llm import get_llm
from .failures import Attempt, all_failed
from .health import HealthBoard, HealthRules
from .router import Router
from .streams import RoutedStream

__all__ = ["Attempt", "HealthBoard", "RoutedStream", "Router", "all_failed", "get_router", "init_app"]


def init_app(app: Flask) -> None:
    settings, llm = app.config["SETTINGS"], app.extensions["llm"]
    rules = HealthRules(eject_after=settings.upstream_eject_after, cooldown=settings.upstream_cooldown_seconds,
                        max_cooldown=settings.upstream_max_cooldown_seconds)
    app.extensions["upstreams"] = Router(catalogue=llm.catalogue, providers=llm.providers, board=HealthBoard(rules),
                                         max_attempts=settings.provider_max_attempts,
                                         record=app.config["METRICS_ENABLED"])


def get_router() -> Router:
    return current_app.extensions["upstreams"]
