"""The gunicorn multiprocess directory: prepared by the master, folded when a worker dies.

prometheus_client never deletes a dead worker's counter and histogram files, so
every recycled worker would add files that every scrape re-reads forever. When a
worker exits, the master adds its values into one archive file per metric type
and deletes its files: the file count stays bounded by the number of live
workers, and totals never go backwards. Scrapes hold a shared lock and the fold
an exclusive one, so no scrape ever sees a worker counted twice or not at all.

A file the scrape leaves out as unreadable (see `collector.py`) is treated the
same way by the fold, so what a scrape shows before and after a fold is the
same: the file is moved to `quarantine/`, logged with its name, and counted in
`gateway_metrics_quarantined_files` for someone to look at. The fold never
raises: it runs in the gunicorn master, which must outlive any file.
"""
import fcntl
import glob
import logging
import os
import shutil
import time
from contextlib import contextmanager

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import mark_process_dead

from .dbfile import HEADER, CorruptFile, read_values

log = logging.getLogger(__name__)

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
LOCK_FILE = ".fold.lock"
QUARANTINE = "quarantine"
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
    """Move a dead worker's totals into the archive files; returns how many of its files it cleared."""
    path = path or directory()
    if not path:
        return 0
    try:
        with locked(path, exclusive=True):
            mark_process_dead(pid, path)
            cleared = 0
            for name in sorted(glob.glob(os.path.join(path, f"*_{pid}.db"))):
                try:
                    _fold_file(path, name)
                    cleared += 1
                except Exception:
                    log.exception("metrics: could not fold %s; it stays where it is", name)
            return cleared
    except Exception:
        log.exception("metrics: could not fold the files of dead worker %s in %s; they stay where they are", pid, path)
        return 0


def _fold_file(path: str, name: str) -> None:
    """Never raises for a bad file: it is moved aside instead, so the next one is still folded."""
    kind = os.path.basename(name).split("_")[0]
    if kind not in SUMMED_TYPES:
        os.remove(name)
        return
    try:
        values = read_values(name)
    except (CorruptFile, OSError) as exc:
        quarantine(path, name, f"unreadable ({exc})")
        return
    if not values and _never_initialised(name):
        log.warning("metrics: %s was empty (its worker died while creating it): nothing to fold, removed", name)
        os.remove(name)
        return
    archive = os.path.join(path, f"{kind}_archive.db")
    try:
        read_values(archive)
    except FileNotFoundError:
        pass  # the first fold of this type creates it
    except CorruptFile as exc:
        # A scrape already leaves it out, so setting it aside changes no total.
        quarantine(path, archive, f"unreadable archive ({exc})")
    try:
        _add_into(archive, values)
    except Exception as exc:
        # Some values may be in the archive already: never fold this file again, or they would count twice.
        quarantine(path, name, f"could not be added to {archive} ({type(exc).__name__}: {exc})")
        return
    os.remove(name)


def _never_initialised(name: str) -> bool:
    with open(name, "rb") as handle:
        header = handle.read(HEADER)
    return len(header) < HEADER or header[:4] == b"\0\0\0\0"


def quarantine(path: str, name: str, reason: str) -> str:
    """Move a file out of the scrape's sight, keeping it (and its counts) for a person to inspect."""
    folder = os.path.join(path, QUARANTINE)
    os.makedirs(folder, exist_ok=True)
    stem = os.path.basename(name)[:-len(".db")]
    target = os.path.join(folder, f"{stem}.{time.time_ns()}.db")
    os.replace(name, target)
    log.error("metrics: %s %s: moved to %s, not counted", name, reason, target)
    return target


def _add_into(archive_path: str, values) -> None:
    archive = MmapedDict(archive_path)
    try:
        for key, value, timestamp in values:
            total, _ = archive.read_value(key)
            archive.write_value(key, total + value, timestamp)
    finally:
        archive.close()


def quarantined(path: str) -> int:
    return len(glob.glob(os.path.join(path, QUARANTINE, "*.db")))
