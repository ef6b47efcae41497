"""Scrapes while workers come and go, and bad metrics files of a dying worker: nothing fails, nothing goes back."""
import os
import signal
import struct
import threading
import time
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

    def __init__(self, url: str, timeout: float = 10):
        super().__init__()
        self.url, self.stop, self.statuses, self.bodies, self.timings = url, threading.Event(), [], [], []
        self.timeout = timeout

    def run(self):
        while not self.stop.is_set():
            try:
                # A new connection each time, as Prometheus after a failed scrape: a worker may be on its way out.
                response = requests.get(self.url, headers={"Connection": "close"}, timeout=self.timeout)
            except requests.RequestException as exc:
                self.statuses.append(repr(exc))
                continue
            self.statuses.append(response.status_code)
            self.timings.append(response.elapsed.total_seconds())
            if response.status_code == 200:
                self.bodies.append(response.text)

    def finish(self) -> list:
        self.stop.set()
        self.join()
        return [parse(body) for body in self.bodies]


def both_endpoints(server) -> list[Scraper]:
    """Scrapers of the master's listener and of the API port.

    The master's listener answers at once, so its scrapes keep Prometheus's 10 s timeout. The API port's are
    served by workers that may be restarting: on a loaded machine (the whole suite beside it) a scrape can
    queue behind several worker boots in a row. What is under test there is that a scrape never fails
    (prometheus_client #1199), not how fast workers boot.
    """
    return [Scraper(server.metrics_url), Scraper(server.url + "/metrics", timeout=60)]


def get_livez(url: str) -> bool:
    try:
        return requests.get(url + "/livez", headers={"Connection": "close"}, timeout=10).status_code == 200
    except requests.RequestException:
        return False


def test_scrapes_never_fail_while_every_request_recycles_a_worker(tmp_path):
    """Hundreds of restarts under load, scraped back to back on both endpoints.

    gthread recycles a worker right after its request; a gevent worker (the default)
    finishes its loop's one-second tick first, so it would restart a few times a
    second at most. Creating and folding the files is the same either way, and the
    scrape race of prometheus_client #1199 needs many of both. CHURN_REQUESTS=3000
    runs the full-size proof (a minute or two here); the suite sends 200: about
    140 worker boots and 50-odd scrapes of the API port while they happen (600
    cost about 50 CPU-seconds of worker boots, a sixth of the suite's).
    """
    total, clients = int(os.environ.get("CHURN_REQUESTS", "200")), 8
    metrics_dir = tmp_path / "metrics"
    # Preloaded (the default, pinned here): each of the hundreds of boots is a fork of the built app, not an
    # import of it, which would cost about a second of CPU each. Creating and folding the files is the same.
    env = {"GUNICORN_MAX_REQUESTS": "1", "GUNICORN_ACCESS_LOG": "/dev/null", "GUNICORN_WORKER_CLASS": "gthread",
           "GUNICORN_PRELOAD": "true", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with Gunicorn(tmp_path, workers=3, threads=2, env=env) as server:
        server.wait_for_workers(3)
        started = time.perf_counter()
        baseline = scrape(server.metrics_url).value("http_requests_total", **LIVEZ)  # the start-up checks
        first_scrape = time.perf_counter() - started
        scrapers = both_endpoints(server)
        files = FileCounter(metrics_dir)
        for thread in (*scrapers, files):
            thread.start()
        try:
            with ThreadPoolExecutor(clients) as pool:
                answered = sum(pool.map(get_livez, [server.url] * total))
        finally:
            snapshots = [scraper.finish() for scraper in scrapers]
            files.stop.set()
            files.join()
        wait_until(lambda: len(server.worker_pids()) == 3, what="workers to settle")
        final = scrape(server.metrics_url)
        restarts = server.log().count("Booting worker")

    for scraper in scrapers:
        failed = [status for status in scraper.statuses if status != 200]
        assert failed == [], f"{len(failed)} of {len(scraper.statuses)} scrapes of {scraper.url} failed: {failed[:5]}"
    print(f"scrapes: {[len(s.statuses) for s in scrapers]}, answered {answered}/{total}, restarts {restarts}")
    assert restarts >= total // 3, restarts
    assert all(len(s) >= 20 for s in snapshots), [len(s) for s in snapshots]
    for series in snapshots:
        assert_never_decreases(series + [final])
    assert answered == total
    assert final.value("http_requests_total", **LIVEZ) - baseline == answered
    # Live workers' files plus one archive per type, however many workers came and went.
    assert max(files.counts) <= 3 * 4 + 3 + 2, max(files.counts)
    # So a scrape reads as many files at the end as at the start: its time stays where it was.
    late = [t for t in scrapers[0].timings[len(scrapers[0].timings) // 2:]]
    assert sorted(late)[len(late) // 2] < max(0.5, 5 * first_scrape), (first_scrape, sorted(late)[-5:])


class FileCounter(threading.Thread):
    """Counts the metrics files every few milliseconds while the workers churn."""

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.stop, self.counts = path, threading.Event(), []

    def run(self):
        while not self.stop.wait(0.01):
            self.counts.append(len(list(self.path.glob("*.db"))))


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
        scrapers = both_endpoints(server)
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
