"""The gunicorn multiprocess directory: prepared by the master, folded when a worker dies.

prometheus_client never deletes a dead worker's counter and histogram files, so
every recycled worker would add files that every scrape re-reads forever. When a
worker exits, the master adds its values into one archive file per metric type
and deletes its files: the file count stays bounded by the number of live
workers, and totals never go backwards. Scrapes hold a shared lock and the fold
an exclusive one, so no scrape ever sees a worker counted twice or not at all.
"""
import fcntl
import glob
import os
import shutil
from contextlib import contextmanager

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
LOCK_FILE = ".fold.lock"
# Types whose values are sums over processes; live* gauges are simply dropped on exit.
SUMMED_TYPES = ("counter", "histogram", "summary")


def directory() -> str | None:
    return os.environ.get(ENV_VAR) or None


def wipe(path: str) -> None:
    """Start from zero: files left by an earlier run would be summed into this one."""
    for name in glob.glob(os.path.join(path, "*.db")):
        os.remove(name)


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def locked(path: str, exclusive: bool):
    with open(os.path.join(path, LOCK_FILE), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fold_dead_worker(pid: int, path: str | None = None) -> int:
    """Move a dead worker's totals into the archive files; returns how many files it removed."""
    path = path or directory()
    if not path:
        return 0
    with locked(path, exclusive=True):
        mark_process_dead(pid, path)
        removed = 0
        for name in glob.glob(os.path.join(path, f"*_{pid}.db")):
            kind = os.path.basename(name).split("_")[0]
            if kind in SUMMED_TYPES:
                _add_into(os.path.join(path, f"{kind}_archive.db"), name)
            os.remove(name)
            removed += 1
        return removed


def _add_into(archive_path: str, worker_path: str) -> None:
    archive = MmapedDict(archive_path)
    try:
        for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(worker_path):
            total, _ = archive.read_value(key)
            archive.write_value(key, total + value, timestamp)
    finally:
        archive.close()


class LockedMultiProcessCollector(MultiProcessCollector):
    """MultiProcessCollector that never reads while the master folds a dead worker."""

    def collect(self):
        with locked(self._path, exclusive=False):
            # A worker creating its first file leaves it empty for an instant, before
            # sizing it; prometheus_client would fail the whole scrape on it. It holds
            # no value yet, so it is skipped.
            files = [name for name in glob.glob(os.path.join(self._path, "*.db")) if _has_header(name)]
            return list(self.merge(files, accumulate=True))


def _has_header(path: str) -> bool:
    try:
        return os.path.getsize(path) >= 8
    except FileNotFoundError:
        return False
