"""The concurrency results as Markdown: the machine, the versions, the settings, and one table per scenario."""
from __future__ import annotations

import statistics

from ..common.report import machine, now, pool, table, versions


def _median(runs: list[dict], key: str):
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "cores":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _spread(runs: list[dict], key: str, unit: str) -> str:
    """The median, and the range when there were several runs: numbers on a shared machine are noisy."""
    values = [run[key] for run in runs if run.get(key) is not None]
    if not values:
        return "–"
    text = _fmt(statistics.median(values), unit)
    if len(values) > 1:
        text += f" ({_fmt(min(values), unit)}–{_fmt(max(values), unit)})"
    return text


def _probes_failed(runs: list[dict]) -> str:
    """Probes that failed (2 s timeout) out of those sent, over all runs: p99 only counts answers."""
    return f"{sum(run.get('livez_failed', 0) for run in runs)}/{sum(run.get('livez_probes', 0) for run in runs)}"


def markdown(args, ceiling: list[dict], models: dict[str, dict[str, list[dict]]]) -> str:
    stream_rows = [["client → fake upstream (tool ceiling)", _spread(ceiling, "errors", ""),
                    _spread(ceiling, "ttft_p95", "ms"), _spread(ceiling, "done_max", "s"), "–", "–", "–", "–",
                    _spread(ceiling, "client_cpu", "cores")]]
    slow_rows, hung_rows = [], []
    for name, runs in models.items():
        s = runs["streams"]
        stream_rows.append([f"gateway, {name}", _spread(s, "errors", ""), _spread(s, "ttft_p95", "ms"),
                            _spread(s, "done_max", "s"), _spread(s, "livez_p99", "ms"), _spread(s, "livez_max", "ms"),
                            _probes_failed(s),
                            _fmt(_median(s, "kib_per_stream")), _spread(s, "client_cpu", "cores")])
        h = runs["slow_headers"]
        slow_rows.append([name, _fmt(_median(h, "closed_by_server")), _spread(h, "close_max", "s"),
                          _spread(h, "livez_p50", "ms"), _spread(h, "livez_p99", "ms"),
                          _probes_failed(h)])
        u = runs["hung_upstream"]
        hung_rows.append([name, str(u[0]["statuses"]), _spread(u, "livez_p99", "ms"), _probes_failed(u),
                          _fmt(_median(u, "upstream_open_1s_after_leaving"))])
    threads = f", {args.threads} threads each for gthread" if "gthread" in models else ""
    return "\n\n".join([
        f"# Concurrency benchmark, {now()}",
        f"- Machine: {machine()}.\n"
        f"- Versions: {versions('gunicorn', 'gevent', 'flask', 'requests', 'sqlalchemy')}\n"
        f"- Gateway: `gunicorn -c gunicorn.conf.py wsgi:app`, {args.workers} workers{threads}, "
        f"header timeout {args.header_timeout} s, database {'SQLite (fresh file)' if not args.database_url else 'PostgreSQL'}, "
        f"pool {pool()} per worker\n"
        f"- Load: {args.streams} concurrent streams of {args.tokens} tokens over {args.seconds:g} s; "
        f"{args.slow_sockets} slow-header sockets (1 byte/s, held {args.header_timeout + 3} s); "
        f"{args.hung} chats against a hung upstream (clients leave after {args.hung_hold:g} s). "
        f"{args.repeat} run(s) each: medians, range in brackets.",
        "## Concurrent streams\n\n" + table(
            ["", "errors", "TTFT p95", "slowest stream", "/livez p99", "/livez slowest", "/livez failed",
             "KiB per open stream", "client CPU (cores)"],
            stream_rows),
        "## Slow-header sockets\n\n" + table(
            ["serving model", "closed by the server", "time to close (max)", "/livez p50", "/livez p99",
             "/livez failed"], slow_rows),
        "## Hung upstream\n\n" + table(
            ["serving model", "client saw", "/livez p99", "/livez failed", "upstream requests still open 1 s later"],
            hung_rows),
        "## Targets (issue 24), per serving model\n\n" + table(["serving model", "target", "measured", "met"], [
            row for name, runs in models.items() for row in _target_rows(name, runs["streams"])]),
    ]) + "\n"


# A burst of streams on this machine: (what, key, unit, bound); every one is a maximum.
BURST_TARGETS = [("time to first token p95", "ttft_p95", "ms", 2.0), ("/livez p99", "livez_p99", "ms", 0.25),
                 ("/livez slowest probe", "livez_max", "ms", 1.0), ("KiB per open stream", "kib_per_stream", "", 40.0)]


def _target_rows(name: str, runs: list[dict]) -> list[list[str]]:
    rows = []
    for what, key, unit, bound in BURST_TARGETS:
        value = _median(runs, key)
        met = "–" if value is None else ("yes" if value <= bound else "**no**")
        rows.append([name, f"{what} <= {_fmt(bound, unit)}", _fmt(value, unit), met])
    failed = sum(run.get("livez_failed", 0) for run in runs)
    rows.append([name, "no /livez probe failed (2 s)", _probes_failed(runs), "yes" if failed == 0 else "**no**"])
    return rows
