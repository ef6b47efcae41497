"""`python -m bench.failover [--quick]`: steady chats over three upstreams; one is killed, then restarted.

A gunicorn gateway (2 workers) serves one model on three fake model servers, each a process of its
own. Steady load (whole replies and streams, every third a stream) runs through three phases: before,
during (one server SIGKILLed), after (restarted on the same port). Reported: the client-visible error
rate (a stream cut after its first token is counted apart: the one failure the gateway may not hide),
latency percentiles per phase, the time until every worker ejected the dead server
(`chat_upstream_up` = 0), and the time from its restart until it served calls again.
Results go to bench/results/failover-<time>.md (and .json).
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ..common.client import percentile
from ..common.report import default_output, machine, now, table, write_results
from ..common.servers import Gateway
from . import rig

TOKENS, SECONDS = 8, 0.4


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--phase", type=float, default=10.0, help="seconds of each phase")
    parser.add_argument("--quick", action="store_true", help="short phases (the suite's check)")
    parser.add_argument("--output", type=Path, help="default: bench/results/failover-<time>.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.phase = 8, 4.0
    return args


def upstream_up(gateway: Gateway, upstream: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("chat_upstream_up{") and f'upstream="{upstream}"' in line and 'model="llama3.1"' in line:
                return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(predicate, timeout: float) -> float | None:
    """Seconds until `predicate()` held, or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def run(args: argparse.Namespace) -> dict:
    log_dir = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    fakes = rig.start_fakes(log_dir, tokens=TOKENS, seconds=SECONDS)
    models = rig.catalogue(log_dir / "models.json", fakes)
    gateway = Gateway(log_dir, upstream_url=fakes["up-a"].url, env=rig.gateway_env(models))
    try:
        gateway.start()
        user = rig.User(gateway.url)
        stop = threading.Event()
        outcomes: list[rig.Outcome] = []
        loader = threading.Thread(target=lambda: outcomes.extend(
            rig.run_load(user, concurrency=args.clients, stop=stop, stream_every=3)))
        started = time.monotonic()
        loader.start()
        time.sleep(args.phase)
        killed = time.monotonic()
        rig.kill(fakes["up-c"])
        eject = wait_for(lambda: upstream_up(gateway, "up-c") == 0, args.phase * 2)
        time.sleep(max(0.0, args.phase - (time.monotonic() - killed)))
        restarted = time.monotonic()
        fakes["up-c"] = rig.restart(fakes["up-c"], log_dir, tokens=TOKENS, seconds=SECONDS)
        restore = wait_for(lambda: fakes["up-c"].stats()["served"] > 0, 30)
        time.sleep(max(0.0, args.phase - (time.monotonic() - restarted)))
        stop.set()
        loader.join()
    finally:
        gateway.stop()
        for fake in fakes.values():
            fake.stop()
    phases = {"before": (started, killed), "during": (killed, restarted), "after": (restarted, float("inf"))}
    report = {"clients": args.clients, "phase_seconds": args.phase, "reply_seconds": SECONDS,
              "eject_seconds": eject, "restore_seconds": restore, "phases": {}}
    for phase, (begin, end) in phases.items():
        chosen = [o for o in outcomes if begin <= o.started < end]
        visible = [o for o in chosen if o.error and not (o.streamed and o.tokens > 0)]
        cut = [o for o in chosen if o.error and o.streamed and o.tokens > 0]
        seconds = [o.seconds for o in chosen if not o.error]
        report["phases"][phase] = {
            "requests": len(chosen), "errors": len(visible), "error_rate": len(visible) / max(len(chosen), 1),
            "streams_cut_after_a_token": len(cut),
            **{f"p{q}": percentile(seconds, q) for q in (50, 95, 99)},
        }
    return report


def render(report: dict) -> str:
    rows = [[phase, str(p["requests"]), str(p["errors"]), f"{p['error_rate']:.2%}", str(p["streams_cut_after_a_token"]),
             *(f"{p[key]:.3f}" if p[key] is not None else "-" for key in ("p50", "p95", "p99"))]
            for phase, p in report["phases"].items()]
    fmt = lambda value: f"{value:.2f} s" if value is not None else "not seen"  # noqa: E731
    return "\n".join([
        "# Failover: three upstreams, one killed and restarted", "",
        f"{now()}; {machine()}; {report['clients']} clients, {report['phase_seconds']:.0f} s a phase, "
        f"replies of {report['reply_seconds']} s (whole, and every third a stream).", "",
        table(["phase", "requests", "client-visible errors", "error rate", "streams cut after a token",
               "p50 s", "p95 s", "p99 s"], rows), "",
        f"Ejected by every worker after the kill: {fmt(report['eject_seconds'])}. "
        f"Served again after the restart: {fmt(report['restore_seconds'])} "
        "(cooldown 2 s, doubling to 4 s, probe every 1 s).", "",
    ])


def main(argv=None) -> int:
    args = parse_args(argv)
    report = run(args)
    write_results(args.output or default_output("failover", "quick" if args.quick else "full"),
                  render(report), report, "temporary directory")
    errors = sum(phase["errors"] for phase in report["phases"].values())
    return 0 if errors == 0 and report["restore_seconds"] is not None else 1

