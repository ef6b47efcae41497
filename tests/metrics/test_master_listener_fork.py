"""The master's metrics listener and worker forks: a fork waits for the scrape in progress.

A worker forked while the listener's thread held a native lock (SQLite's, as the usage query opened its
connection) inherited it locked, and hung at its first database access: a scrape of that worker timed
out once in a full run. The probe below runs in a process of its own, as the gunicorn master would.
"""
import subprocess
import sys

import pytest

from tests.support.servers import ROOT, free_port

pytestmark = pytest.mark.slow
SCRAPE_SECONDS = 1.0

PROBE = """
import os, sys, threading, time, urllib.request
from prometheus_client.registry import Collector
from app.metrics.exposition import serve_from_master

class SlowUsage(Collector):
    def collect(self):
        started.set()
        time.sleep({seconds})  # a usage query that takes its time
        return []

started = threading.Event()
serve_from_master("127.0.0.1", {port}, "", SlowUsage())
scrape = threading.Thread(target=lambda: urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=10).read())
scrape.start()
started.wait(10)
asked = time.monotonic()
pid = os.fork()
if pid == 0:
    os._exit(0)
forked = time.monotonic() - asked
os.waitpid(pid, 0)
scrape.join()
print(forked)
"""


def test_a_fork_waits_for_the_scrape_in_progress():
    probe = PROBE.format(port=free_port(), seconds=SCRAPE_SECONDS)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    forked_after = float(result.stdout.strip().splitlines()[-1])
    assert forked_after >= SCRAPE_SECONDS * 0.8, forked_after  # the fork waited until the scrape was done
