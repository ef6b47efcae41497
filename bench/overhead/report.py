"""The overhead results as Markdown: machine, versions, settings, one table per measurement, and the targets."""
from __future__ import annotations

import statistics

from ..common.report import machine, now, pool, table, versions
from . import hellos, steps

TARGETS = "added p50 <= 3 ms and p99 <= 8 ms at concurrency 1; TTFT added p50 <= 3 ms; >= 600 turns/s at " \
          "concurrency 16; metrics cost <= 5%; /metrics <= 50 ms at 8 workers after 1,000 restarts"


def median(runs: list[dict], key: str):
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def ms(value) -> str:
    return "–" if value is None else f"{value * 1000:.2f} ms"


def spread_ms(runs: list[dict], key: str) -> str:
    values = [run[key] for run in runs if run.get(key) is not None]
    if not values:
        return "–"
    text = ms(statistics.median(values))
    if len(values) > 1:
        text += f" ({min(values) * 1000:.2f}–{max(values) * 1000:.2f})"
    return text


def rate(runs: list[dict]) -> str:
    values = [run["per_second"] for run in runs]
    text = f"{statistics.median(values):,.0f}/s"
    return text + (f" ({min(values):,.0f}–{max(values):,.0f})" if len(values) > 1 else "")


def metrics_cost(load: dict) -> float | None:
    """1 - on/off, from the median of the per-round ratios: each pair of rounds ran back to back."""
    ratios = [on["per_second"] / off["per_second"] for on, off in zip(load["metrics on"], load["metrics off"])
              if off["per_second"]]
    return 1 - statistics.median(ratios) if ratios else None


def metrics_cpu_cost(chat: dict) -> float | None:
    """The gateway's CPU per turn with metrics on over off, minus one (older results have no such figure)."""
    cpu = chat.get("metrics_cost_cpu")
    if not cpu or not cpu["metrics off"]["server"]:
        return None
    return cpu["metrics on"]["server"] / cpu["metrics off"]["server"] - 1


def _cpu_sentence(chat: dict) -> str:
    cpu, cost = chat.get("metrics_cost_cpu"), metrics_cpu_cost(chat)
    if cost is None:
        return ""
    on, off = cpu["metrics on"]["server"], cpu["metrics off"]["server"]
    return (f"The gateway's processes spent {on * 1000:.2f} ms of CPU per turn with metrics on and {off * 1000:.2f} ms "
            f"with them off (read from /proc around the same rounds): {cost:+.1%}.")


def _latency_rows(runs: list[dict], what: str) -> list[list[str]]:
    return [[f"p{q}", spread_ms(runs, f"gateway_{what}_p{q}"), spread_ms(runs, f"direct_{what}_p{q}"),
             spread_ms(runs, f"added_{what}_p{q}")] for q in (50, 95, 99)]


def _load_rows(load: dict[str, list[dict]]) -> list[list[str]]:
    return [[name, rate(runs), spread_ms(runs, "latency_p50"), spread_ms(runs, "latency_p99"),
             str(sum(r["errors"] for r in runs))] for name, runs in load.items()]


def targets(results: dict) -> list[list[str]]:
    chat, scrapes = results["chat"], results["metrics"]
    c1, stream = chat["chat_c1"], chat["stream_c1"]
    turns = statistics.median(r["per_second"] for r in chat["chat_load"]["gateway"])
    cost, cpu_cost = metrics_cost(chat["metrics_cost"]), metrics_cpu_cost(chat)
    most = max(scrapes["by_restarts"]) if scrapes["by_restarts"] else None
    eight = scrapes["by_workers"].get(8, {}).get("api", {}).get("p99")
    after = scrapes["by_restarts"][most]["master"]["p99"] if most is not None else None

    def row(name, target, value, ok):
        return [name, target, value, "–" if ok is None else ("yes" if ok else "**no**")]

    p50, p99, ttft = (median(c1, "added_total_p50"), median(c1, "added_total_p99"), median(stream, "added_ttft_p50"))
    return [
        row("added latency p50, concurrency 1", "<= 3 ms", ms(p50), None if p50 is None else p50 <= 0.003),
        row("added latency p99, concurrency 1", "<= 8 ms", ms(p99), None if p99 is None else p99 <= 0.008),
        row("time to first token added, p50", "<= 3 ms", ms(ttft), None if ttft is None else ttft <= 0.003),
        row("chat turns/s at concurrency 16", ">= 600", f"{turns:,.0f}", turns >= 600),
        row("metrics cost (throughput)", "<= 5%", "–" if cost is None else f"{cost:.1%}",
            None if cost is None else cost <= 0.05),
        row("metrics cost (the gateway's CPU per turn)", "<= 5%", "–" if cpu_cost is None else f"{cpu_cost:.1%}",
            None if cpu_cost is None else cpu_cost <= 0.05),
        row("/metrics p99, 8 workers (API port)", "<= 50 ms", ms(eight), None if eight is None else eight <= 0.05),
        row(f"/metrics p99 after {most} restarts (master)", "<= 50 ms", ms(after),
            None if after is None else after <= 0.05),
    ]


CHART_ROUTES = ("hello", "/livez", "/v1 whole", "conversation whole")


def chart_caption(args) -> str:
    return (f"medians of {args.hello_rounds} alternated rounds of {args.hello_seconds:g} s; {args.workers} gevent "
            f"workers; {'PostgreSQL' if args.postgres else 'SQLite'}; {now()}")


def _hello_figure(value: float | None, what: str) -> str:
    if value is None:
        return "–"
    return f"1/{1 / value:.1f} ({value:.2f}×)" if what == "throughput" else f"{value:.1f}"


def hello_targets(chat: dict) -> list[list[str]]:
    """The issue's table: each figure as a multiple of the hello measured in the same rounds."""
    rows = []
    for route, concurrency, what, target in hellos.TARGETS:
        runs = chat["hellos"].get(concurrency) or chat["hellos"].get(str(concurrency))
        value = hellos.ratio(runs, route, what) if runs else None
        name = (f"{route} throughput, c={concurrency}, in hellos' throughput" if what == "throughput"
                else f"{route} latency p50, c={concurrency}, in hello round trips")
        ok = None if value is None else (value >= target if what == "throughput" else value <= target)
        goal = f">= {_hello_figure(target, what)}" if what == "throughput" else f"<= {target:g}"
        floor = hellos.ratio(runs, hellos.FLOORS[route], what) if runs and hellos.FLOORS.get(route) in runs else None
        rows.append([name, goal, _hello_figure(value, what), _hello_figure(floor, what),
                     "–" if ok is None else ("yes" if ok else "**no**")])
    long = chat["long_conversation"]
    ok = long["ratio"] is not None and long["ratio"] <= hellos.LONG_TARGET
    rows.append([f"a turn in a {long['long_messages']}-message conversation vs a {long['short_messages']}-message "
                 "one (X-Gateway-Overhead-Ms p50)", f"<= {hellos.LONG_TARGET}×",
                 "–" if long["ratio"] is None else
                 f"{long['ratio']:.2f}× ({long['long_p50_ms']:.2f} vs {long['short_p50_ms']:.2f} ms)",
                 "–", "yes" if ok else "**no**"])
    return rows


TARGETS_HEADER = ["", "target", "measured", "the stack's floor", "met"]
FLOOR_NOTE = ("The stack's floor (`bench/overhead/floor.py`) is the same chat on the gateway's own libraries and "
              "database round trips (gunicorn's gevent worker, Flask, flask-jwt-extended, SQLAlchemy Core, "
              "psycopg2, `requests`) with none of the gateway's code: no validation, limits, budgets, metrics, "
              "tracing or logs. Measured in the same rounds, it says how much of a target the stack leaves.")


def hello_table(chat: dict) -> str:
    """Per concurrency and route: requests/s, p50, p99, and the hello-relative throughput and p50."""
    rows = []
    for concurrency, runs in chat["hellos"].items():
        for route in runs:
            rows.append([str(concurrency), route, rate(runs[route]), spread_ms(runs[route], "latency_p50"),
                         spread_ms(runs[route], "latency_p99"),
                         "1" if route == hellos.HELLO else _hello_figure(hellos.ratio(runs, route, "throughput"),
                                                                         "throughput"),
                         "1" if route == hellos.HELLO else _hello_figure(hellos.ratio(runs, route, "latency"),
                                                                         "latency"),
                         str(sum(r["errors"] for r in runs[route]))])
    return table(["c", "route", "requests/s", "p50", "p99", "throughput in hellos", "p50 in hellos", "errors"], rows)


def steps_section(chat: dict) -> str:
    """(8) The floor step by step and the gateway beside it: throughput, and machine CPU per request by process."""
    measured = chat.get("steps")
    if not measured:
        return ""
    cpu, runs = measured["cpu"], measured["runs"]
    hello_cpu = cpu[hellos.HELLO]["machine"]
    rows = []
    for name, spent in cpu.items():
        rows.append([name, rate(runs[name]),
                     "1" if name == hellos.HELLO else _hello_figure(hellos.ratio(runs, name, "throughput"), "throughput"),
                     ms(spent["machine"]), f"{spent['machine'] / hello_cpu:.1f}" if spent["machine"] and hello_cpu
                     else "–", *(ms(spent[group]) for group in steps.GROUPS),
                     "–" if spent["busy"] is None else f"{spent['busy']:.0%}"])
    return (f"## Where a chat's CPU goes (concurrency {steps.CONCURRENCY})\n\n"
            "The stack's floor step by step (each step adds one part of a turn to the token check), its whole "
            "chats and the gateway's, alternated with a hello. CPU is read from /proc around each round: the "
            "machine's busy time, and the processes on the path (the server is gunicorn's master and workers "
            "of the route's own server). Per request, medians of requests/s; CPU summed over the rounds.\n\n"
            + table(["route", "requests/s", "throughput in hellos", "machine CPU / request",
                     "in hellos' CPU", *steps.GROUPS, "cores busy"], rows))


def hellos_markdown(args, results: dict) -> str:
    return "\n\n".join(part for part in [
        f"# Overhead benchmark in hellos only, {now()}", f"- Machine: {machine()}",
        "## In hellos (the issue's table)\n\n" + table(TARGETS_HEADER, hello_targets(results["chat"])) + "\n\n"
        + FLOOR_NOTE, hello_table(results["chat"]), steps_section(results["chat"])] if part) + "\n"


def markdown(args, results: dict) -> str:
    chat, scrapes = results["chat"], results["metrics"]
    database = "PostgreSQL 127.0.0.1:5432 (a fresh database)" if args.postgres else "SQLite (a fresh file per gateway)"
    cost = metrics_cost(chat["metrics_cost"])
    by_workers = [[str(w), ms(s["api"]["p50"]), ms(s["api"]["p99"]), ms(s["master"]["p50"]), ms(s["master"]["p99"]),
                   f"{s['api']['bytes']:,}", str(s["api"]["errors"] + s["master"]["errors"])]
                  for w, s in scrapes["by_workers"].items()]
    by_restarts = [[str(n), f"{s['served']} in {s['seconds']:.1f} s", ms(s["master"]["p50"]), ms(s["master"]["p99"]),
                    f"{s['master']['bytes']:,}", str(s["failed"] + s["master"]["errors"])]
                   for n, s in scrapes["by_restarts"].items()]
    header = ["", "through the gateway", "straight to the fake", "added"]
    return "\n\n".join([
        f"# Overhead benchmark, {now()}"
        f"{' (quick: sizes too small for conclusions)' if args.quick else ''}",
        f"- Command: `python -m bench.overhead{' --quick' if args.quick else ''}{' --postgres' if args.postgres else ''}`"
        f" ({results['wall_seconds']:.0f} s)\n"
        f"- Machine: {machine()}\n"
        f"- Versions: {versions('gunicorn', 'gevent', 'flask', 'sqlalchemy', 'psycopg2-binary', 'requests', 'prometheus-client')}\n"
        f"- Gateway: `gunicorn -c gunicorn.conf.py wsgi:app`, gevent, {args.workers} workers, APP_ENV=production, "
        f"access log off, rate limits on (memory, chat limit raised for one user), database {database}, pool {pool()}"
        f" per worker; every chat stores both messages before replying\n"
        f"- Fake model server (bench.fake_model): asyncio, Ollama protocol, {args.tokens}-token replies sent at once; load client: asyncio, "
        f"keep-alive connections on loopback. Concurrency 1: {args.requests} requests per side per run, gateway and "
        f"direct alternated; concurrency {args.concurrency}: {args.rounds} rounds of {args.seconds:g} s per side, "
        f"alternated. {args.repeat} run(s) at concurrency 1: medians, range in brackets. Each conversation "
        f"takes 10 turns, then a fresh one (turns beyond the prepared conversations: "
        f"{chat.get('conversation_turns_reused', 0)})",
        "## In hellos (the issue's table)\n\n" + table(TARGETS_HEADER, hello_targets(chat))
        + "\n\n" + FLOOR_NOTE
        + f" A hello is a bare Flask app under gunicorn's gevent worker ({args.workers} workers), measured in the "
        f"same rounds as each route (alternated, order rotating); a figure is the median of the per-round ratios. "
        f"/v1 uses an API key; conversation routes a JWT. {args.hello_rounds} rounds of {args.hello_seconds:g} s "
        f"per route and concurrency.\n\n" + hello_table(chat),
        steps_section(chat),
        "## Targets\n\n" + table(["", "target", "measured", "met"], targets(results)),
        "## (1) Whole chats, concurrency 1\n\n" + table(header, _latency_rows(chat["chat_c1"], "total"))
        + "\n\nThe gateway's own figure, `X-Gateway-Overhead-Ms`: p50 "
        + spread_ms(chat["chat_c1"], "header_overhead_p50") + ", p99 " + spread_ms(chat["chat_c1"], "header_overhead_p99"),
        f"## (1) Whole chats, concurrency {args.concurrency}\n\n"
        + table(["", "turns/s", "latency p50", "latency p99", "errors"], _load_rows(chat["chat_load"])),
        "## (2) Streamed chats, concurrency 1\n\nTime to first token:\n\n"
        + table(header, _latency_rows(chat["stream_c1"], "ttft"))
        + "\n\nWhole stream:\n\n" + table(header, _latency_rows(chat["stream_c1"], "total")),
        f"## (3) The cost of the metrics (METRICS_ENABLED=false), concurrency {args.concurrency}\n\n"
        + table(["", "turns/s", "latency p50", "latency p99", "errors"], _load_rows(chat["metrics_cost"]))
        + f"\n\nCost: {'–' if cost is None else f'{cost:.1%}'} of throughput (the median of the per-round ratios). "
        + _cpu_sentence(chat) + " At concurrency 1, metrics on vs off:\n\n"
        + table(["", "metrics on", "metrics off", "difference"], _latency_rows(chat["metrics_cost_c1"], "total")),
        "## (4) /metrics latency\n\nBy worker count (gevent, after chat traffic on every worker; "
        f"{args.scrapes} sequential scrapes):\n\n"
        + table(["workers", "API port p50", "API port p99", "master p50", "master p99", "bytes", "errors"], by_workers)
        + f"\n\nAfter worker restarts ({args.restart_workers} `gthread` workers with GUNICORN_MAX_REQUESTS=1, "
        "so each `/livez` request "
        "ends its worker; gthread because a gevent worker only notices max_requests on its 1 s loop tick), "
        "scraped on the master's listener:\n\n"
        + table(["restarts", "recycled since the row above", "p50", "p99", "bytes", "errors"], by_restarts),
        f"## (5) The floor: a bare Flask hello under gunicorn's gevent worker ({args.workers} workers)\n\n"
        + "Concurrency 1:\n\n" + table(["", "bare Flask hello", "fake upstream GET /", "difference"],
                                        _latency_rows(chat["floor_c1"], "total"))
        + "\n\n" + table(["", "gateway /livez", "fake upstream GET /", "difference"],
                          _latency_rows(chat["livez_c1"], "total"))
        + f"\n\nConcurrency {args.concurrency}:\n\n"
        + table(["", "requests/s", "latency p50", "latency p99", "errors"], _load_rows(chat["floor_load"])),
    ]) + "\n"
