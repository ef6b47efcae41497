"""Whether each model provider answers, probed in the background and read from a cache by /health.

Per worker process: gunicorn starts the probe in each worker as it starts
(after the fork, so no thread is copied into a child; other servers start it
on the first /health), then it checks every provider once per
PROVIDER_PROBE_SECONDS, so the first /health already knows, and tells the
router's health board (app/upstreams): a server that does not answer is
ejected in this worker, and one that answers again ends its cooldown, so its
next call is the half-open trial that restores it. What counts as reachable
is llm.reach's test. Under gevent the thread is a greenlet.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import Flask

from ..llm import Catalogue, ModelSpec
from ..llm.reach import answers, without_credentials
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

    def start(self) -> ProviderProbe:
        """Start this process's probe, unless it runs already."""
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=_run, args=(weakref.ref(self),), name="provider-probe", daemon=True).start()
        return self

    def snapshot(self) -> list[dict]:
        """The last result for every provider, starting this process's probe if it is not running yet."""
        self.start()
        with self._lock:
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
            status = "up" if answers(target.base_url, PROBE_TIMEOUT) else "down"
            if self.board is not None:
                for spec in target.upstreams:
                    self.board.probed(spec, up=status == "up")
            with self._lock:
                previous = self._results[target]["status"]
                self._results[target] = {"status": status, "checked_at": datetime.now(timezone.utc)}
            # Changes only, and not the first "up": the log says when a provider went away or came back.
            if status != previous and (previous != "unknown" or status == "down"):
                log.warning("provider %s at %s is %s", target.provider, without_credentials(target.base_url), status)


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
