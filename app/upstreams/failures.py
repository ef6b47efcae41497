"""What the client is told when no attempt answered: one builder for every route's 502/504."""
from __future__ import annotations

from dataclasses import dataclass

from ..llm import ModelSpec, ProviderError
from ..llm.errors import ProviderUnreachable


@dataclass(frozen=True)
class Attempt:
    """One failed try: which model and upstream (names from the catalogue, never URLs) and why."""

    model: str
    upstream: str
    reason: str


def all_failed(model: ModelSpec, attempts: list[Attempt], last: ProviderError | None) -> ProviderError:
    """The last attempt's error (so its status and code: 502, or 504 for a timeout), listing every attempt."""
    details = {"model": model.name,
               "attempts": [{"model": a.model, "upstream": a.upstream, "reason": a.reason} for a in attempts]}
    if last is None:
        return ProviderError("No upstream of this model could be tried.", details=details)
    if isinstance(last, ProviderUnreachable):
        # Named for the model the client asked for, whichever upstream or fallback was tried last.
        return ProviderUnreachable(model.name, details=details)
    return type(last)(last.message, reason=last.reason, details=details)
