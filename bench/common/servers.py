"""The one server launcher: the fake model server and the gateway under gunicorn.conf.py, on loopback."""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc."""
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*"):
            try:
                pids.extend(int(child) for child in (task / "children").read_text().split())
            except FileNotFoundError:
                pass
        index += 1
    return pids


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` or one of its descendants holds a listening TCP socket on `port` (from /proc).

    A port found free can be taken by another server before ours binds it; that
    server would then answer our readiness probe while ours exits. Asking who
    holds the port tells them apart.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for process in process_tree(pid):
        try:
            descriptors = list(Path(f"/proc/{process}/fd").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in inodes:
                    return True
            except OSError:
                pass
    return False


def _raise_fd_limit() -> None:
    # Each open stream costs the gateway two sockets (client, upstream) and the bench one.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _get(url: str, timeout: float = 1.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except OSError:
        return 0


class Process:
    """A child server process with its own log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, argv: list[str], env: dict, ready_url: str, log_dir: Path):
        self.name, self.argv, self.env, self.ready_url = name, argv, env, ready_url
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "Process":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=_raise_fd_limit)
        deadline = time.monotonic() + timeout
        port = urllib.parse.urlsplit(self.ready_url).port
        while not (listens(self.process.pid, port) and _get(self.ready_url) == 200):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} not ready after {timeout}s; see {self.log_path}")
            time.sleep(0.1)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class FakeModel(Process):
    """`python -m bench.fake_model` in a process of its own, so its work never competes with the load client's."""

    def __init__(self, log_dir: Path, *, tokens: int, seconds: float, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.ollama_url = self.url  # where a gateway's OLLAMA_BASE_URL points; OpenAI clients add /v1
        self.openai_url = f"{self.url}/v1"
        argv = [sys.executable, "-m", "bench.fake_model", "--port", str(self.port),
                "--tokens", str(tokens), "--seconds", str(seconds)]
        super().__init__(f"fake-model-{self.port}", argv, dict(os.environ), f"{self.url}/_fake/stats", log_dir)

    def set_script(self, **script) -> dict:
        """Change what later requests get (the fields of bench.fake_model.Script; `tokens` and `seconds` pace)."""
        request = urllib.request.Request(f"{self.url}/_fake/script", data=json.dumps(script).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=5) as response:
            return json.loads(response.read())


class Gateway(Process):
    """`gunicorn -c gunicorn.conf.py wsgi:app`, as users start it, with the settings given as variables."""

    def __init__(self, log_dir: Path, *, upstream_url: str, database_url: str | None = None,
                 env: dict | None = None, port: int | None = None):
        self.port, self.metrics_port = port or free_port(), free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.database_url = database_url or f"sqlite:///{tempfile.mkdtemp(prefix='gateway-bench-')}/gateway.db"
        full_env = {
            **os.environ,
            "API_HOST": HOST, "API_PORT": str(self.port),
            "METRICS_HOST": HOST, "METRICS_PORT": str(self.metrics_port),
            "DATABASE_URL": self.database_url,
            "APP_ENV": "development",
            "JWT_SECRET_KEY": "bench-secret-bench-secret-bench-secret-0123456789",
            "LOG_LEVEL": "WARNING", "GUNICORN_ACCESS_LOG": "",
            "CHAT_MAX_STREAMS_PER_USER": "0",  # one bench user opens hundreds of streams
            "DEFAULT_MODEL": "llama3.1", "OLLAMA_BASE_URL": upstream_url,
            "OPENAI_BASE_URL": "", "OPENAI_API_KEY": "", "MODELS_FILE": "", "OPENAI_MODELS": "", "OLLAMA_MODELS": "",
            **(env or {}),
        }
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        argv = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        super().__init__(f"gateway-{self.port}", argv, full_env, f"{self.url}/livez", log_dir)

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]

    def workers_rss_bytes(self) -> int:
        """Resident memory of all workers together."""
        total = 0
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except FileNotFoundError:
                pass
        return total
