"""`python -m bench.failover [--quick]`: steady chats over three upstreams; one is killed, then restarted.

A gunicorn gateway (2 workers) serves one model on three fake model servers, each a process of its
own. First the spread, at 16 concurrent whole chats: three equal servers, weights 2 and 1, and one
server ten times slower (its share, and the p95 of all chats against the all-fast run). Then steady load (whole replies and streams, every third a stream) runs through three phases: before,
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
        args.clients, args.phase = 6, 3.0
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


def spread(user: rig.User, fakes: dict, rounds: int) -> dict:
    """Shares of the calls and p95s at 16 concurrent whole chats: equal, weighted, one server 10x slower."""
    def measured(model=None):
        before = rig.served(fakes)
        outcomes = rig.run_load(user, concurrency=16, requests_each=rounds, model=model)
        return rig.shares(before, rig.served(fakes)), outcomes

    even_shares, even = measured()
    weighted_shares, _ = measured("weighted")
    fakes["up-c"].set_script(tokens=TOKENS, seconds=SECONDS * 10)
    slow_shares, slow = measured()
    fakes["up-c"].set_script(tokens=TOKENS, seconds=SECONDS)
    return {"even_shares": even_shares, "weighted_ratio": weighted_shares["up-a"] / max(weighted_shares["up-b"], 1e-9),
            "slow_share": slow_shares["up-c"], "p95_even": rig.p95(even), "p95_slow": rig.p95(slow),
            "p95_ratio": rig.p95(slow) / rig.p95(even), "errors": sum(o.error is not None for o in even + slow)}


def run(args: argparse.Namespace) -> dict:
    log_dir = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    fakes = rig.start_fakes(log_dir, tokens=TOKENS, seconds=SECONDS)
    models = rig.catalogue(log_dir / "models.json", fakes)
    gateway = Gateway(log_dir, upstream_url=fakes["up-a"].url, env=rig.gateway_env(models))
    try:
        gateway.start()
        user = rig.User(gateway.url)
        spread_figures = spread(user, fakes, rounds=3 if args.quick else 20)
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
              "eject_seconds": eject, "restore_seconds": restore, "spread": spread_figures, "phases": {}}
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
    s = report["spread"]
    return "\n".join([
        "# Failover: three upstreams, one killed and restarted", "",
        f"{now()}; {machine()}.", "",
        "## Spread, 16 concurrent whole chats, 2 workers", "",
        f"Three equal upstreams: {', '.join(f'{n} {v:.1%}' for n, v in s['even_shares'].items())}. "
        f"Weights 2 and 1: {s['weighted_ratio']:.2f}x the calls. One upstream 10x slower: {s['slow_share']:.1%} of "
        f"the calls; p95 of all chats {s['p95_slow']:.3f} s against {s['p95_even']:.3f} s all fast "
        f"({s['p95_ratio']:.2f}x). Errors: {s['errors']}.", "",
        "## One upstream SIGKILLed, then restarted", "",
        f"{report['clients']} clients, {report['phase_seconds']:.0f} s a phase, "
        f"replies of {report['reply_seconds']} s (whole, and every third a stream). A chat counts in the phase it "
        "started in, so a stream the kill cut after its first token shows in `before`.", "",
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
    errors += report["spread"]["errors"]
    return 0 if errors == 0 and report["restore_seconds"] is not None else 1

