"""Reading server-sent events the way a browser's EventSource does, for every test that streams."""
import json
from collections.abc import Iterable


def parse_sse(body: bytes | Iterable[bytes]) -> list[dict]:
    """The `data:` events of a whole SSE body (bytes) or of its lines, decoded; comments (heartbeats) left out."""
    lines = body.split(b"\n") if isinstance(body, bytes) else body
    return [json.loads(line[len(b"data: "):]) for line in lines if line.startswith(b"data: ")]


def read_events(lines: Iterable[bytes], limit: int | None = None) -> list[dict]:
    """Decode events from a live stream's lines, stopping after `limit` events (then the caller closes it)."""
    events = []
    for line in lines:
        if line.startswith(b"data: "):
            events.append(json.loads(line[len(b"data: "):]))
            if limit is not None and len(events) >= limit:
                break
    return events
