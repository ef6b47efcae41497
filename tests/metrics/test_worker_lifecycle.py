"""Workers die and get recycled; the numbers Prometheus sees must not notice."""
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.metrics import assert_never_decreases, scrape
from tests.support.servers import Gunicorn, wait_until

pytestmark = pytest.mark.slow
THREADS = 4


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
        loaders = [threading.Thread(target=hammer, args=(server.url + "/health", stop, sent)) for _ in range(6)]
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
        snapshots.append(scrape(server.metrics_url))

    assert_never_decreases(snapshots)
    final = snapshots[-1]
    served = sum(1 for status in sent if status == 200)
    counted = final.value("http_requests_total", method="GET", route="/health", status_code="200")
    # A request is counted when its response closes, just after its last byte: the victim can die in
    # between for at most one request per thread. Otherwise every answered request is counted once.
    assert served - THREADS <= counted <= len(sent)
    assert final.value("http_requests_in_flight") == 0
    assert final.total("chat_completions_in_flight") == 0
    assert str(victim) not in {s["pid"] for s in final.series("process_resident_memory_bytes")}


def test_hundreds_of_worker_restarts_keep_scrapes_bounded_and_counters_continuous(tmp_path):
    metrics_dir = tmp_path / "multiproc"
    # gthread recycles a worker right after its second request; a gevent worker finishes
    # its loop's one-second tick first, serving everything that arrives meanwhile, so
    # hundreds of restarts would take minutes. Folding is the master's work either way.
    env = {"GUNICORN_MAX_REQUESTS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "GUNICORN_ACCESS_LOG": "/dev/null",
           "GUNICORN_WORKER_CLASS": "gthread"}
    with Gunicorn(tmp_path, workers=3, threads=2, env=env) as server:
        server.wait_for_workers(3)
        ok, timings, file_counts, snapshots = 0, [], [], [scrape(server.metrics_url)]
        baseline = snapshots[0].value("http_requests_total", method="GET", route="/livez", status_code="200")
        for index in range(500):
            try:
                # A new connection each time (no Session): keep-alive would pin one worker.
                ok += requests.get(server.url + "/livez", timeout=5).status_code == 200
            except requests.RequestException:
                pass
            if index % 50 == 0:
                started = time.perf_counter()
                snapshots.append(scrape(server.metrics_url))
                timings.append(time.perf_counter() - started)
                file_counts.append(len(list(Path(metrics_dir).glob("*.db"))))
        wait_until(lambda: len(server.worker_pids()) == 3, what="workers to settle")
        time.sleep(0.5)
        snapshots.append(scrape(server.metrics_url))
        file_counts.append(len(list(Path(metrics_dir).glob("*.db"))))
        restarts = server.log().count("Booting worker")

    assert restarts >= 200, restarts
    assert_never_decreases(snapshots)
    assert snapshots[-1].value("http_requests_total", method="GET", route="/livez", status_code="200") - baseline == ok
    assert ok >= 490
    # Live workers' files plus one archive per type, whatever the number of restarts.
    assert max(file_counts) <= 3 * 4 + 3 + 2, file_counts
    assert max(timings[2:]) < max(0.5, 5 * timings[1]), timings
