"""Process metrics for the gunicorn master and every live worker, read from /proc at scrape time.

prometheus_client drops its process collector in multiprocess mode; each series
here carries `role` and `pid`, so memory and CPU can be watched per worker.
"""
import os
import resource

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LABELS = ["role", "pid"]


def _boot_time() -> float:
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("btime"):
                return float(line.split()[1])
    return 0.0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def read_stat(pid: int) -> dict | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            # The command name may contain spaces; the fields start after its closing parenthesis.
            fields = handle.read().rsplit(")", 1)[1].split()
        open_fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError):
        return None
    return {
        "cpu": (int(fields[11]) + int(fields[12])) / TICKS,
        "start": int(fields[19]) / TICKS,
        "vsize": int(fields[20]),
        "rss": int(fields[21]) * PAGE,
        "fds": open_fds,
    }


class GunicornProcessCollector(Collector):
    """Reports the master (`master_pid`) and its children, from whichever process scrapes."""

    def __init__(self, master_pid_getter):
        self._master_pid = master_pid_getter
        self._boot = _boot_time()

    def collect(self):
        master = self._master_pid()
        processes = [("master", master)] + [("worker", pid) for pid in children(master)]
        rss = GaugeMetricFamily("process_resident_memory_bytes", "Resident memory size in bytes.", labels=LABELS)
        vms = GaugeMetricFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.", labels=LABELS)
        cpu = CounterMetricFamily("process_cpu_seconds_total", "Total user and system CPU time in seconds.", labels=LABELS)
        start = GaugeMetricFamily("process_start_time_seconds", "Start time since the epoch in seconds.", labels=LABELS)
        fds = GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", labels=LABELS)
        max_fds = GaugeMetricFamily("process_max_fds", "Maximum number of open file descriptors.", labels=LABELS)
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        for role, pid in processes:
            stat = read_stat(pid)
            if stat is None:
                continue
            labels = [role, str(pid)]
            rss.add_metric(labels, stat["rss"])
            vms.add_metric(labels, stat["vsize"])
            cpu.add_metric(labels, stat["cpu"])
            start.add_metric(labels, self._boot + stat["start"])
            fds.add_metric(labels, stat["fds"])
            max_fds.add_metric(labels, soft_limit)
        return [rss, vms, cpu, start, fds, max_fds]
