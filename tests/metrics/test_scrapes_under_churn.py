"""Scrapes while workers come and go, and bad metrics files of a dying worker: nothing fails, nothing goes back."""
import os
import signal
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.metrics import assert_never_decreases, parse, scrape
from tests.support.servers import Gunicorn, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
LIVEZ = {"method": "GET", "route": "/livez", "status_code": "200"}


class Scraper(threading.Thread):
    """Scrapes one URL back to back until stopped, keeping every status and body."""

    def __init__(self, url: str):
        super().__init__()
        self.url, self.stop, self.statuses, self.bodies = url, threading.Event(), [], []

    def run(self):
        while not self.stop.is_set():
            try:
                # A new connection each time, as Prometheus after a failed scrape: a worker may be on its way out.
                response = requests.get(self.url, headers={"Connection": "close"}, timeout=10)
            except requests.RequestException as exc:
                self.statuses.append(repr(exc))
                continue
            self.statuses.append(response.status_code)
            if response.status_code == 200:
                self.bodies.append(response.text)

    def finish(self) -> list:
        self.stop.set()
        self.join()
        return [parse(body) for body in self.bodies]


def get_livez(url: str) -> bool:
    try:
        return requests.get(url + "/livez", headers={"Connection": "close"}, timeout=10).status_code == 200
    except requests.RequestException:
        return False


def test_scrapes_never_fail_while_every_request_recycles_a_worker(tmp_path):
    total, clients = 3000, 8
    # gthread: a gevent worker only notices max_requests on its 1 s loop tick, so it would serve
    # hundreds of requests per life and the test would see a few dozen restarts, not thousands.
    env = {"GUNICORN_MAX_REQUESTS": "1", "GUNICORN_ACCESS_LOG": "/dev/null", "GUNICORN_WORKER_CLASS": "gthread"}
    with Gunicorn(tmp_path, workers=3, threads=2, env=env) as server:
        server.wait_for_workers(3)
        baseline = scrape(server.metrics_url).value("http_requests_total", **LIVEZ)  # the start-up checks
        scrapers = [Scraper(server.metrics_url), Scraper(server.url + "/metrics")]
        for scraper in scrapers:
            scraper.start()
        try:
            with ThreadPoolExecutor(clients) as pool:
                answered = sum(pool.map(get_livez, [server.url] * total))
        finally:
            snapshots = [scraper.finish() for scraper in scrapers]
        wait_until(lambda: len(server.worker_pids()) == 3, what="workers to settle")
        final = scrape(server.metrics_url)
        restarts = server.log().count("Booting worker")

    for scraper in scrapers:
        failed = [status for status in scraper.statuses if status != 200]
        assert failed == [], f"{len(failed)} of {len(scraper.statuses)} scrapes of {scraper.url} failed: {failed[:5]}"
    print(f"scrapes: {[len(s.statuses) for s in scrapers]}, answered {answered}/{total}, restarts {restarts}")
    assert restarts >= 1000, restarts
    assert all(len(s) >= 50 for s in snapshots), [len(s) for s in snapshots]
    for series in snapshots:
        assert_never_decreases(series + [final])
    assert answered == total
    assert final.value("http_requests_total", **LIVEZ) - baseline == answered


def stage_bad_files(metrics_dir: Path, pid: int) -> list[Path]:
    """Files a dying worker can leave behind: one just created, one cut short mid-write, one overwritten.

    Named apart from the worker's own files (the `<type>_<tag>_<pid>.db` shape prometheus_client uses
    for gauges), so the worker keeps writing its real ones undisturbed until it is killed.
    """
    empty, truncated, garbage = (metrics_dir / f"counter_{tag}_{pid}.db" for tag in ("empty", "truncated", "garbage"))
    empty.write_bytes(b"")
    real = (metrics_dir / f"counter_{pid}.db").read_bytes()
    used = struct.unpack_from("i", real)[0]
    truncated.write_bytes(real[:used - 20])
    garbage.write_bytes(struct.pack("ii", 4096, 0) + os.urandom(200))
    return [empty, truncated, garbage]


def test_a_worker_killed_with_bad_metrics_files_takes_nothing_down(tmp_path):
    metrics_dir = tmp_path / "multiproc"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "GUNICORN_ACCESS_LOG": "/dev/null"}
    with Gunicorn(tmp_path, workers=3, threads=4, env=env) as server:
        victim = server.wait_for_workers(3)[0]
        # Until the victim has served a request and written its counter file: connections spread over workers.
        wait_until(lambda: get_livez(server.url) and (metrics_dir / f"counter_{victim}.db").exists(), what="a victim file")
        staged = stage_bad_files(metrics_dir, victim)
        scrapers = [Scraper(server.metrics_url), Scraper(server.url + "/metrics")]
        for scraper in scrapers:
            scraper.start()
        answered_before = sum(get_livez(server.url) for _ in range(30))
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(server.worker_pids()) == 3 and victim not in server.worker_pids(), what="a new worker")
        answered_after = sum(get_livez(server.url) for _ in range(30))
        snapshots = [scraper.finish() for scraper in scrapers]
        final = scrape(server.metrics_url)
        master_alive = server.process.poll() is None
        log = server.log()

    assert master_alive
    assert answered_before == answered_after == 30
    master_scrapes, worker_scrapes = (scraper.statuses for scraper in scrapers)
    assert [s for s in master_scrapes if s != 200] == []
    # The one scrape the victim may have been answering dies with it; every other one succeeds.
    assert [s for s in worker_scrapes if isinstance(s, int) and s != 200] == []
    assert len([s for s in worker_scrapes if not isinstance(s, int)]) <= 1, worker_scrapes
    assert all(snapshots), "each endpoint was scraped before and after the kill"
    for series in snapshots:
        assert_never_decreases(series + [final])
    for path in staged:
        assert path.name in log, f"the log does not name {path.name}"
        assert not path.exists()
    quarantined = sorted(p.name.split(".")[0] for p in (metrics_dir / "quarantine").iterdir())
    assert quarantined == [f"counter_garbage_{victim}", f"counter_truncated_{victim}"]
    assert final.value("gateway_metrics_quarantined_files") == 2
    assert final.value("http_requests_total", **LIVEZ) >= answered_before + answered_after
