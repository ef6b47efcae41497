"""Whether each model provider answers, probed in the background and read from a cache by /health.

Per worker process: the probe starts on the first /health a process serves
(after the fork, so no thread is copied into a child), then checks every
provider once per PROVIDER_PROBE_SECONDS, and tells the router's health board
(app/upstreams): a server that does not answer is ejected in this worker, and
one that answers again ends its cooldown, so its next call is the half-open
trial that restores it. Any HTTP answer counts as reachable
(an OpenAI-compatible server answers 401 without a key, which is fine): the
question is whether the gateway can reach it, not whether a model is loaded.
No API key is sent. Under gevent the thread is a greenlet.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests
from flask import Flask

from ..llm import Catalogue, ModelSpec
from ..upstreams import HealthBoard

log = logging.getLogger(__name__)
PROBE_TIMEOUT = 5.0
_create_lock = threading.Lock()


@dataclass(frozen=True)
class Target:
    provider: str
    base_url: str
    models: tuple[str, ...]
    upstreams: tuple[ModelSpec, ...]  # every (model, upstream) served at this URL


class ProviderProbe:
    def __init__(self, catalogue: Catalogue, interval: float, board: HealthBoard | None = None):
        grouped: dict[tuple[str, str], list[ModelSpec]] = {}
        for model in catalogue:
            for spec in model.routes:
                grouped.setdefault((spec.provider, spec.base_url), []).append(spec)
        self.targets = [Target(kind, url, tuple(dict.fromkeys(spec.name for spec in specs)), tuple(specs))
                        for (kind, url), specs in grouped.items()]
        self.interval, self.board = interval, board
        self._results: dict[Target, dict] = {t: {"status": "unknown", "checked_at": None} for t in self.targets}
        self._lock = threading.Lock()
        self._pid: int | None = None

    def snapshot(self) -> list[dict]:
        """The last result for every provider, starting this process's probe if it is not running yet."""
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=_run, args=(weakref.ref(self),), name="provider-probe", daemon=True).start()
            results = dict(self._results)
        return [{"provider": t.provider, "models": list(t.models),
                 "upstreams": [spec.upstream for spec in t.upstreams], **results[t]} for t in self.targets]

    def upstreams(self, catalogue: Catalogue) -> list[dict]:
        """Each model's upstreams as this worker's router sees them; empty without a board."""
        if self.board is None:
            return []
        return [self.board.snapshot(spec) for model in catalogue for spec in model.routes]

    def check_all(self) -> None:
        for target in self.targets:
            status = "up" if _answers(target.base_url) else "down"
            if self.board is not None:
                for spec in target.upstreams:
                    self.board.probed(spec, up=status == "up")
            with self._lock:
                previous = self._results[target]["status"]
                self._results[target] = {"status": status, "checked_at": datetime.now(timezone.utc)}
            # Changes only, and not the first "up": the log says when a provider went away or came back.
            if status != previous and (previous != "unknown" or status == "down"):
                log.warning("provider %s at %s is %s", target.provider, _without_credentials(target.base_url), status)


def probe_for(app: Flask) -> ProviderProbe:
    probe = app.extensions.get("provider_probe")
    if probe is None:
        with _create_lock:
            probe = app.extensions.get("provider_probe")
            if probe is None:
                settings = app.config["SETTINGS"]
                probe = ProviderProbe(app.extensions["llm"].catalogue, settings.provider_probe_seconds,
                                      app.extensions["upstreams"].board)
                app.extensions["provider_probe"] = probe
    return probe


def _run(ref: weakref.ref) -> None:
    # Holds the probe only while checking: when its app is gone, the thread ends.
    while (probe := ref()) is not None:
        try:
            probe.check_all()
        except Exception:  # a bug here must not end the probing for the life of the worker
            log.exception("provider probe failed")
        interval = probe.interval
        del probe
        time.sleep(interval)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=PROBE_TIMEOUT, allow_redirects=False, stream=True).close()
        return True
    except requests.RequestException:
        return False


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()
