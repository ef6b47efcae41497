"""The provider kinds, and the per-process pool that hands out one client per upstream."""
from __future__ import annotations

import os
import threading
import weakref

from .http import ChatProvider
from .ollama import OllamaProvider
from .openai import OpenAIProvider
from .types import ModelSpec

PROVIDER_KINDS: dict[str, type[ChatProvider]] = {
    OllamaProvider.kind: OllamaProvider,
    OpenAIProvider.kind: OpenAIProvider,
}


class ProviderPool:
    """One client, hence one pooled HTTP session, per upstream server and worker process."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str | None], ChatProvider] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # An app dropped without close() (a test's, say) still closes its sockets.
        weakref.finalize(self, _close_all, self._clients)

    def client_for(self, spec: ModelSpec) -> ChatProvider:
        key = (spec.provider, spec.base_url, spec.api_key)
        with self._lock:
            if self._pid != os.getpid():
                # Sockets inherited through a fork belong to the parent: start afresh.
                self._clients.clear()
                self._pid = os.getpid()
            client = self._clients.get(key)
            if client is None:
                client = PROVIDER_KINDS[spec.provider](base_url=spec.base_url, api_key=spec.api_key)
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            _close_all(self._clients)


def _close_all(clients: dict) -> None:
    for client in clients.values():
        client.close()
    clients.clear()
