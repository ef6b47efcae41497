"""Whether a model server answers at all: the one test behind /health's probe and the ready line's warning.

Any HTTP answer counts (an OpenAI-compatible server answers 401 without a
key, which is fine): the question is whether the gateway can reach it, not
whether a model is loaded. No API key is sent.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import requests


def answers(url: str, timeout: float) -> bool:
    try:
        requests.get(url, timeout=timeout, allow_redirects=False, stream=True).close()
        return True
    except requests.RequestException:
        return False


def without_credentials(url: str) -> str:
    """The URL as a log line may show it: no user or password."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()
