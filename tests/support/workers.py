"""Which gunicorn worker serves a connection, read from /proc: for tests that must reach every worker."""
import http.client
import json
import os
from pathlib import Path

from tests.support.servers import Gunicorn


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the loopback connection from `client_port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return inode
    return None


def worker_serving(server: Gunicorn, connection: http.client.HTTPConnection) -> int | None:
    """The pid of the worker holding the accepted socket of `connection` (after one request on it)."""
    inode = _socket_inode(server.port, connection.sock.getsockname()[1])
    if inode is None:
        return None
    for pid in server.worker_pids():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:  # the fd closed meanwhile
                continue
    return None


def request(connection: http.client.HTTPConnection, method: str, path: str, headers: dict | None = None):
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    return response.status, json.loads(body) if body else None


def one_connection_per_worker(server: Gunicorn, workers: int, attempts: int = 100) -> dict[int, http.client.HTTPConnection]:
    """Keep-alive connections, one held by each worker: open new ones until every worker has one."""
    host, port = "127.0.0.1", server.port
    pinned: dict[int, http.client.HTTPConnection] = {}
    for _ in range(attempts):
        connection = http.client.HTTPConnection(host, port, timeout=10)
        assert request(connection, "GET", "/livez")[0] == 200
        pid = worker_serving(server, connection)
        if pid is not None and pid not in pinned:
            pinned[pid] = connection
            if len(pinned) == workers:
                return pinned
        else:
            connection.close()
    for connection in pinned.values():
        connection.close()
    raise AssertionError(f"reached {len(pinned)} of {workers} workers in {attempts} connections")


def send(connection: http.client.HTTPConnection, method: str, path: str, body: dict | None = None,
         headers: dict | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a pinned connection: status, headers and the whole body (a stream read to its end)."""
    headers = {**(headers or {}), **({"Content-Type": "application/json"} if body is not None else {})}
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    return response.status, response.headers, response.read()
