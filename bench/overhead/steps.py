"""Where a chat's machine CPU goes: the stack's floor step by step, beside the gateway, at concurrency 16.

Each route runs in alternated rounds with a hello (as in the table in hellos), and
around each round the CPU time of every process on the path is read from /proc:
the server's processes (gunicorn's master and workers), PostgreSQL's, the fake model's
and the load client's own, with the machine's busy time. Per request, that is what a
chat costs the machine, and which part of it is the gateway's code.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..common.servers import process_tree
from . import scenarios
from .scenarios import Route

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("server", "PostgreSQL", "fake model", "load client")
CONCURRENCY = 16
BELOW = "conversation below the floor (no SQLAlchemy, no requests)"
# The hello, the floor's steps (each adds one part of a turn), the floor's whole chats and the gateway's.
STEPS = ("hello", "floor: token check", "floor: token + model call", "floor: token + database",
         "conversation floor", BELOW, "conversation whole", "/v1 floor", "/v1 whole")


def routes(table_routes: dict[str, Route], floor_port: int, headers: dict, floor_pool,
           pids: dict[int, int]) -> dict[str, tuple[Route, int]]:
    """Each step's route and the pid of the server behind it (by port), the table's routes reused."""
    body = {"content": "hi"}
    parts = {"floor: token check": Route(floor_port, "POST", "/floor/token", body, headers),
             "floor: token + model call": Route(floor_port, "POST", "/floor/model", body, headers),
             "floor: token + database": Route(floor_port, "POST", lambda: f"/floor/database/{floor_pool()}", body,
                                              headers),
             BELOW: Route(floor_port, "POST", lambda: f"/floor/below/conversations/{floor_pool()}/messages", body,
                          headers)}
    chosen = {name: parts.get(name) or table_routes[name] for name in STEPS}
    return {name: (route, pids[route.port]) for name, route in chosen.items()}


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields from the state on (field 3), after the command's parentheses."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _seconds(pid: int, reaped: bool = False) -> float:
    """user + system CPU of one process (fields 14, 15), and with `reaped` its exited children's (16, 17)."""
    try:
        fields = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(fields[i]) for i in ((11, 12, 13, 14) if reaped else (11, 12))) / TICKS


def _postgres() -> float:
    """Every postgres process's CPU, plus what the postmaster's exited children spent.

    Backends and autovacuum workers come and go during a round; a child's CPU moves into its
    parent's reaped-children counters when it exits, so the sum stays whole.
    """
    pids: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
    return sum(_seconds(pid, reaped=parent not in pids) for pid, parent in pids.items())


def _machine_busy() -> float:
    """Seconds of all cores not idle (nor waiting on I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICKS


def snapshot(server_pid: int, fake_pid: int) -> dict[str, float]:
    return {"server": sum(_seconds(p) for p in process_tree(server_pid)),
            "PostgreSQL": _postgres(),
            "fake model": _seconds(fake_pid), "load client": _seconds(os.getpid()),
            "machine": _machine_busy()}


async def measure(routes: dict[str, tuple[Route, int]], fake_pid: int, seconds: float, rounds: int,
                  concurrency: int = CONCURRENCY) -> dict:
    """routes: name -> (route, its server's pid). Per route: median requests/s and CPU seconds per request by group."""
    totals = {name: {"ok": 0, "wall": 0.0, **{g: 0.0 for g in (*GROUPS, "machine")}} for name in routes}
    runs: dict[str, list[dict]] = {name: [] for name in routes}
    names = list(routes)
    for index in range(rounds):
        for name in names[index % len(names):] + names[:index % len(names)]:
            route, server_pid = routes[name]
            before = snapshot(server_pid, fake_pid)
            run = await scenarios.load(route, concurrency, seconds)
            after = snapshot(server_pid, fake_pid)
            runs[name].append(run)
            totals[name]["ok"] += run["ok"]
            totals[name]["wall"] += run["ok"] / run["per_second"] if run["per_second"] else 0.0
            for group in (*GROUPS, "machine"):
                totals[name][group] += after[group] - before[group]
    return {"runs": runs, "cpu": {name: {group: (value / t["ok"] if t["ok"] else None)
                                         for group, value in t.items() if group not in ("ok", "wall")}
                                  | {"busy": t["machine"] / t["wall"] / os.cpu_count() if t["wall"] else None}
                                  for name, t in totals.items()}}
