"""What the soak asserts at the end: each check returns (passed, what it found) for the report."""
from __future__ import annotations

import time
import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from .traffic import Record

MIB = 1 << 20


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """The master's metrics listener, as Prometheus reads it: {(sample, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _by_label(samples: dict, name: str, label: str, transform=lambda v: v) -> Counter:
    totals: Counter = Counter()
    for (sample, labels), value in samples.items():
        if sample == name:
            totals[transform(dict(labels)[label])] += value
    return totals


def _gauge(samples: dict, name: str) -> float:
    return sum(v for (sample, _), v in samples.items() if sample == name)


def settle(port: int, timeout: float = 60.0) -> dict:
    """Scrape once nothing is in flight any more: streams the client left end when the gateway notices."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        idle = _gauge(samples, "http_requests_in_flight") == 0 and _gauge(samples, "chat_completions_in_flight") == 0
        if idle or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def counters_once_settled(record: Record, before: dict, port: int, timeout: float = 20.0) -> tuple[bool, dict]:
    """check_counters on a settled scrape, scraped again until they agree or `timeout` passes.

    A response the client has read in full may still be closing in its worker
    (its counter moves at close); a real miscount stays past the timeout. The
    in-flight gauges of the last scrape are in the report, to tell which it was.
    """
    deadline = time.monotonic() + timeout
    while True:
        after = settle(port)
        passed, found = check_counters(record, counter_deltas(before, after))
        if passed or time.monotonic() > deadline:
            found["in flight at the last scrape"] = {name: _gauge(after, name) for name in
                                                      ("http_requests_in_flight", "chat_completions_in_flight")}
            return passed, found
        time.sleep(0.5)


def counter_deltas(before: dict, after: dict) -> dict[str, Counter]:
    """The server's counts over the soak, in the shapes the client counted."""
    def delta(name: str, label: str, transform=lambda v: v) -> Counter:
        result = _by_label(after, name, label, transform)
        result.subtract(_by_label(before, name, label, transform))
        return Counter({k: int(v) for k, v in result.items() if v})

    return {"http_by_class": delta("http_requests_total", "status_code", lambda code: f"{code[0]}xx"),
            "completions": delta("chat_completions_total", "outcome"),
            "rate_limit_hits": delta("rate_limit_hits_total", "limit")}


def check_no_unexpected_5xx(record: Record) -> tuple[bool, dict]:
    fault_statuses = {"fault-500": (502,), "fault-hang": (504,)}
    unmatched = Counter(f"{s.kind} {s.status} {s.error}" for s in record.sent
                        if s.status >= 500 and s.status not in fault_statuses.get(s.fault, ()))
    injected = Counter(f"{s.kind} {s.status} ({s.fault})" for s in record.sent if s.status >= 500 and s.fault)
    return not unmatched, {"5xx not injected": dict(unmatched), "5xx injected": dict(injected)}


def check_statuses(record: Record) -> tuple[bool, dict]:
    """Every request got a status it should have, and an HTTP answer at all."""
    wrong = Counter(f"{s.kind}: {s.status or s.error} (expected {'/'.join(map(str, s.expected))})"
                    for s in record.sent if s.status not in s.expected)
    return not wrong, {"unexpected": dict(wrong)}


def check_chats_stored(record: Record, database_url: str) -> tuple[bool, dict]:
    """Both messages of every chat the client saw succeed, read straight from the database."""
    # The driver the gateway ships (SQLAlchemy would pick psycopg 3 for a bare postgresql://).
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, conversation_id, role, content, meta FROM messages")).all()
    finally:
        engine.dispose()
    assistants = {row.id: row for row in rows if row.role == "ASSISTANT"}
    users = {(row.conversation_id, row.content) for row in rows if row.role == "USER"}
    missing_user = [c for c in record.chats if (c.conversation_id, c.user_content) not in users]
    missing_assistant = [c for c in record.chats if c.assistant_id not in assistants
                         or assistants[c.assistant_id].conversation_id != c.conversation_id]
    passed = bool(record.chats) and not missing_user and not missing_assistant
    return passed, {"successful chats": len(record.chats), "user message missing": len(missing_user),
                    "assistant message missing": len(missing_assistant), "messages in the database": len(rows)}


def check_counters(record: Record, server: dict[str, Counter]) -> tuple[bool, dict]:
    client = {"http_by_class": record.by_status_class(), "completions": record.completions(),
              "rate_limit_hits": Counter({"all": sum(1 for s in record.sent if s.status == 429)})}
    server_hits = Counter({"all": sum(server["rate_limit_hits"].values())})
    compared = {"http_by_class": (client["http_by_class"], server["http_by_class"]),
                "completions": (client["completions"], server["completions"]),
                "rate_limit_hits": (client["rate_limit_hits"], server_hits)}
    found = {name: {key: f"{mine.get(key, 0)} / {theirs.get(key, 0)}" for key in sorted(set(mine) | set(theirs))}
             for name, (mine, theirs) in compared.items()}
    found["rate limit hits by limit (server)"] = dict(server["rate_limit_hits"])
    passed = all(+mine == +theirs for mine, theirs in compared.values()) and server_hits["all"] > 0
    return passed, found


def rss_by_worker(pids: list[int]) -> dict[int, int]:
    rss = {}
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1]) * 1024
    return rss


def check_memory(after_warmup: dict[int, int], at_end: dict[int, int], bound_mib: float) -> tuple[bool, dict]:
    """Growth per worker between the two samples; a worker that was replaced counts as a failure too."""
    growth = {pid: (at_end[pid] - after_warmup[pid]) / MIB for pid in after_warmup if pid in at_end}
    replaced = sorted(set(after_warmup) ^ set(at_end))
    passed = not replaced and all(g < bound_mib for g in growth.values())
    return passed, {"bound (MiB per worker)": bound_mib,
                    "RSS after warm-up (MiB)": {p: round(v / MIB, 1) for p, v in after_warmup.items()},
                    "RSS at the end (MiB)": {p: round(v / MIB, 1) for p, v in at_end.items()},
                    "growth (MiB)": {p: round(g, 1) for p, g in growth.items()},
                    "workers replaced": replaced}
