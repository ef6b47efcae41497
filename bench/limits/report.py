"""The limits' costs as Markdown: one row per limit and database, its cost and its share of the request it guards."""
from __future__ import annotations

from ..common.report import machine, now

# (key, what, guarded route: the baseline its ratio is against)
ROWS = [
    ("revocation", "JWT revocation check (one query)", "GET /auth/me"),
    ("rate_limit_memory", "rate limit `chat_user`, memory://", "chat refused 404"),
    ("rate_limit_redis", "rate limit `chat_user`, Redis", "chat refused 404"),
    ("stream_cap_memory", "open streams per user, memory: take + release", "GET /auth/me"),
    ("stream_cap_redis", "open streams per user, Redis: take + release", "GET /auth/me"),
    ("budget_with_budget", "org budget, org with a budget (one query)", "GET /auth/me"),
    ("budget_without_budget", "org budget, org without one (one query)", "GET /auth/me"),
    ("chat_cap", "per-worker chat cap: acquire + release", "GET /auth/me"),
]


def markdown(results: dict, *, blocks: int, per_block: int, direct_per_block: int) -> str:
    lines = [f"# What each limit costs per request, {now()}", "",
             f"- Machine: {machine()}.",
             f"- One process, Flask test client (no network, no gunicorn, no metrics): {blocks} alternated blocks "
             f"on/off of {per_block} requests; direct calls {direct_per_block} per block (x10 for the in-process "
             "caps). Medians of the blocks' means, [fastest block, slowest block].",
             "- cost = on - off; ratio = on / off for requests; for direct calls, cost / the guarded request "
             "(GET /auth/me on that database, the 'off' column of the revocation row; the rate-limit rows' "
             "baseline is a chat refused with 404 at its first query).", "",
             "| database | limit | on | off | cost | ratio |", "|---|---|---|---|---|---|"]
    for database, measured in results.items():
        # The in-process caps touch no database: their baseline is SQLite's.
        baseline = (measured.get("revocation") or results["sqlite"]["revocation"])["off_us"]
        for key, what, guarded in ROWS:
            r = measured.get(key)
            if r is None:
                continue
            if key.startswith(("revocation", "rate_limit")):
                ratio = f"{r['on_us'] / r['off_us']:.3f} of {guarded}"
            else:
                ratio = f"+{100 * r['cost_us'] / baseline:.2f} % of {guarded}"
            r["ratio"] = ratio
            lines.append(f"| {database} | {what} | {r['on_us']} µs {r['spread_on_us']} | {r['off_us']} µs "
                         f"{r['spread_off_us']} | {r['cost_us']} µs | {ratio} |")
    return "\n".join(lines) + "\n"
