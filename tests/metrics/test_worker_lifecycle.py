"""Workers die and get recycled; the numbers Prometheus sees must not notice."""
import os
import signal
import threading
import time

import pytest
import requests

from tests.support.metrics import assert_never_decreases, scrape
from tests.support.servers import Gunicorn, wait_until

pytestmark = pytest.mark.slow
THREADS = 4
LOADERS = 6


def settled(samples):
    return samples if samples.value("http_requests_in_flight") == 0 else None


def hammer(url: str, stop: threading.Event, sent: list):
    while not stop.is_set():
        try:
            sent.append(requests.get(url, timeout=5).status_code)
        except requests.RequestException:
            sent.append(None)  # a request on the killed worker: lost, and never counted


def test_kill_9_a_worker_under_load(tmp_path):
    with Gunicorn(tmp_path, workers=3, threads=THREADS) as server:
        victim = server.wait_for_workers(3)[0]
        stop, sent, snapshots = threading.Event(), [], []
        loaders = [threading.Thread(target=hammer, args=(server.url + "/health", stop, sent)) for _ in range(LOADERS)]
        for thread in loaders:
            thread.start()
        try:
            for step in range(30):
                snapshots.append(scrape(server.metrics_url))
                if step == 10:
                    os.kill(victim, signal.SIGKILL)
                time.sleep(0.1)
        finally:
            stop.set()
            for thread in loaders:
                thread.join()
        wait_until(lambda: len(server.worker_pids()) == 3 and victim not in server.worker_pids(), what="a new worker")
        # A client can read the last byte just before the worker closes (and counts) the response.
        snapshots.append(wait_until(lambda: settled(scrape(server.metrics_url)), what="in-flight requests to close"))

    assert_never_decreases(snapshots)
    final = snapshots[-1]
    served = sum(1 for status in sent if status == 200)
    counted = final.value("http_requests_total", method="GET", route="/health", status_code="200")
    # A request is counted when its response closes, just after its last byte: the victim can die in
    # between for at most one request per client. Otherwise every answered request is counted once.
    assert served - LOADERS <= counted <= len(sent)
    assert final.value("http_requests_in_flight") == 0
    assert final.total("chat_completions_in_flight") == 0
    assert str(victim) not in {s["pid"] for s in final.series("process_resident_memory_bytes")}
