"""One completion's tally, settled once when it ends: its usage row (billing data) and its telemetry."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .. import tracing
from ..llm import ModelSpec, ProviderError, Usage
from ..metrics.definitions import CHAT_OUTCOMES
from ..usage.recording import UsageLedger
from .telemetry import CompletionTelemetry


class CompletionTally:
    """Started just before the upstream call (in the request), settled once when the reply (or stream) ends.

    Settling writes two records: the usage row, unless it was stored with the
    assistant message (usage.recording), and the telemetry (metrics, a log line).
    Both see the same usage, so what is billed is what the metrics counted.
    """

    def __init__(self, model: str, *, streaming: bool, ledger: UsageLedger | None = None):
        self.ledger = ledger
        self.telemetry = CompletionTelemetry(model, streaming=streaming)
        self.clock = self.telemetry.clock

    @property
    def finished(self) -> bool:
        return self.telemetry.finished

    def token(self, at: float) -> None:
        self.telemetry.token(at)

    def answered_by(self, spec: ModelSpec) -> None:
        """The upstream (maybe a fallback model's) that answered: its prices cost the usage row."""
        if self.ledger is not None:
            self.ledger.answered_by(spec)

    def timings(self, *, ended_at: float | None = None) -> dict[str, int | None]:
        return self.telemetry.timings(ended_at=ended_at)

    def finish(self, outcome: str, *, usage: Usage | None = None) -> None:
        """`usage` is what was stored with the assistant message; None when nothing was stored."""
        if outcome not in CHAT_OUTCOMES:
            raise ValueError(f"unknown chat outcome {outcome!r}")
        if self.telemetry.finished:
            return
        cost = self.ledger.cost(usage) if self.ledger is not None else None
        tracing.record_outcome(outcome)
        self.telemetry.finish(outcome, usage=usage, cost=cost)
        if self.ledger is not None:
            self.ledger.write_alone(outcome=outcome, usage=usage, timings=self.telemetry.timings())


@contextmanager
def settled_if_failed(tally) -> Iterator[None]:
    """Settle `tally` (anything with `finish(outcome)`) with the failure's outcome when the call inside fails.

    Success is the caller's to settle, with the usage only it knows.
    """
    try:
        yield
    except ProviderError as exc:
        tally.finish(exc.outcome)
        raise
    except BaseException:
        tally.finish("internal_error")
        raise
