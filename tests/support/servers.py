"""Real servers for tests: gunicorn exactly as users start it, on free loopback ports."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.common.servers import listens

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class ManagedProcess:
    """A server subprocess with its own log file: started until `ready()`, stopped with SIGTERM."""

    name = "server"
    log_path: Path
    url: str

    def __init__(self):
        self.process: subprocess.Popen | None = None

    def command(self) -> tuple[list[str], dict, Path | None]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30.0):
        argv, env, cwd = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=timeout, what=f"{self.name} on {self.url} (log: {self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
        try:
            return self.ready()
        except requests.RequestException:
            return False

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Gunicorn(ManagedProcess):
    """`gunicorn -c gunicorn.conf.py wsgi:app` with its own ports, database and log file."""

    name = "gunicorn"

    def __init__(self, tmp_path, *, database_url: str | None = None, workers: int = 3, threads: int = 4, env=None):
        super().__init__()
        self.tmp_path = Path(tmp_path)
        self.env = {
            **os.environ,
            "API_HOST": "127.0.0.1",
            "METRICS_HOST": "127.0.0.1",
            "DATABASE_URL": database_url or f"sqlite:///{Path(tmp_path) / 'gunicorn.db'}",
            "APP_ENV": "test",
            "JWT_SECRET_KEY": "test-jwt-secret-that-is-long-enough-for-hs256",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": str(threads),
            "LOG_LEVEL": "INFO",
            # Keep-alive connections of the test's clients would hold a stopping gevent worker for 30 s.
            "GUNICORN_GRACEFUL_TIMEOUT": "2",
            # No load balancer to tell: a stop needs no drain window (tests/health/test_draining.py sets its own).
            # The production default of 2 s, on each of the suite's gunicorn stops, cost minutes of waiting.
            "DRAIN_DELAY_SECONDS": "0",
            "PASSWORD_HASH_COST": "10",  # the same scrypt, cheaper: see tests/conftest.py
            "RATE_LIMITS_ENABLED": "false",  # test users all come from 127.0.0.1
            **(env or {}),
        }
        self._fixed = set(env or {})  # what the test set stays set, ports included
        self._choose_ports()

    def _choose_ports(self) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.log_path = self.tmp_path / f"gunicorn-{self.port}.log"
        chosen = {"API_PORT": str(self.port), "METRICS_PORT": str(self.metrics_port)}
        self.env.update({name: value for name, value in chosen.items() if name not in self._fixed})

    def start(self, timeout: float = 30.0, attempts: int = 3):
        """Started on fresh ports again when another process took one between its choice and the bind."""
        for attempt in range(attempts):
            try:
                return super().start(timeout)
            except RuntimeError:
                if attempt == attempts - 1 or "cannot listen on" not in self.log():
                    raise
                self._choose_ports()

    def command(self):
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], self.env, ROOT

    def ready(self) -> bool:
        # Our master must hold the port: another test's server may have taken it, and would answer for us.
        return listens(self.pid, self.port) and requests.get(f"{self.url}/livez", timeout=1).status_code == 200

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def wait_for_workers(self, count: int, timeout: float = 30.0) -> list[int]:
        return wait_until(lambda: len(pids := self.worker_pids()) == count and pids, timeout, what=f"{count} workers")

