"""`--profile`: the gateway's workers sampled by py-spy under concurrency 16, written as a flame graph and a table.

py-spy starts gunicorn itself (attaching to a running process needs ptrace
rights a container may lack; a child of py-spy needs none) and follows the
forked workers; it samples for `seconds`, then stops the server.
"""
from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from ..common.report import now, stamp, table
from ..common.servers import Gateway
from . import charts, hellos, scenarios


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    return found


def collapsed_stacks(path: Path) -> dict[str, int]:
    """py-spy's raw format, without its per-process root frame (so both workers' stacks merge)."""
    stacks: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if frames and count.isdigit():
            key = ";".join(frames)
            stacks[key] = stacks.get(key, 0) + int(count)
    return stacks


async def profile(args, fake, database_url: str | None, log_dir: Path, env: dict, results_dir: Path) -> Path:
    raw = log_dir / "profile-raw.txt"
    gateway = Gateway(log_dir, upstream_url=fake.url, database_url=database_url, env=env)
    # Long enough for the start (migration, imports) and the load: py-spy ends gunicorn after `seconds`.
    gateway.argv = [py_spy(), "record", "--subprocesses", "--nonblocking", "--rate", "250", "--format", "raw",
                    "-d", str(int(args.profile_seconds + 10)), "-o", str(raw), "--", *gateway.argv]
    gateway.start()
    try:
        headers = await scenarios.login(gateway.port, "bench-profile@example.com")
        key_headers = await hellos.api_key(gateway.port, headers)
        pool = scenarios.Conversations(gateway.port, headers, 10)
        await pool.ensure(int(scenarios.MAX_TURNS_PER_SECOND * args.profile_seconds))
        whole, _ = scenarios.chat_routes(gateway.port, fake.port, headers, pool, stream=False)
        v1 = scenarios.Route(gateway.port, "POST", "/v1/chat/completions",
                             {"model": scenarios.MODEL, "messages": scenarios.PROMPT}, key_headers)
        route = whole if args.profile_route == "conversation" else v1
        print(f"  profiling the {args.profile_route} route at concurrency {args.concurrency}", flush=True)
        runs = []
        while gateway.process.poll() is None and len(runs) < args.profile_seconds * 2:
            runs.append(await scenarios.load(route, args.concurrency, 0.5))
        await asyncio.to_thread(gateway.process.wait, 60)
    finally:
        gateway.stop()
    stacks = collapsed_stacks(raw)
    name = f"profile-{stamp()}-{args.profile_route}"
    title = f"gateway workers, {args.profile_route} route, concurrency {args.concurrency}, {now()}"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.svg").write_text(charts.flame_graph(stacks, title))
    (results_dir / f"{name}.txt").write_text("".join(f"{s} {c}\n" for s, c in sorted(stacks.items())))
    rows = [[f"`{frame}`", f"{own:.1%}", f"{inclusive:.1%}"] for frame, own, inclusive in charts.top_frames(stacks, 40)]
    served = sum(r["ok"] for r in runs)
    text = (f"# Profile: {title}\n\n{served} requests served while sampled ({sum(r['errors'] for r in runs)} errors); "
            f"flame graph: [{name}.svg]({name}.svg), collapsed stacks: {name}.txt\n\n"
            "Heaviest frames by their own time (share of all samples in both workers):\n\n"
            + table(["frame", "self", "inclusive"], rows) + "\n")
    output = results_dir / f"{name}.md"
    output.write_text(text)
    print(text)
    return output
