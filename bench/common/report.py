"""The report writer every benchmark uses: where results go, the machine and versions line, Markdown tables."""
from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

from app.config import Settings

RESULTS = Path(__file__).resolve().parents[1] / "results"


def write_results(output: Path, text: str, data: dict, log_dir) -> Path:
    """The Markdown document, and the same numbers as JSON beside it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    output.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str))
    print(f"results written to {output} (logs in {log_dir})")
    return output


def default_output(name: str, *parts: str) -> Path:
    """bench/results/<name>-<UTC stamp>-<parts>.md"""
    return RESULTS / ("-".join([name, stamp(), *parts]) + ".md")


def stamp() -> str:
    return time.strftime("%Y-%m-%d-%H%M", time.gmtime())


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions(*packages: str) -> str:
    return ", ".join(f"{package} {version(package)}" for package in packages)


def memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    return kib / 2**20


def machine() -> str:
    """Cores, memory, platform, Python and the load average: numbers on a shared machine are noisy."""
    return (f"{os.cpu_count()} cores, {memory_gib():.1f} GiB memory, {platform.platform()}, Python "
            f"{platform.python_version()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; "
            "shared with other work, so numbers are noisy")


def pool() -> str:
    """The gateway's database pool per worker, as the environment sets it."""
    defaults = Settings()
    size = os.environ.get("DB_POOL_SIZE", defaults.db_pool_size)
    overflow = os.environ.get("DB_MAX_OVERFLOW", defaults.db_max_overflow)
    return f"{size} + {overflow} overflow"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
