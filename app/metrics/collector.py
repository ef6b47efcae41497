"""What a scrape reads from the multiprocess directory: every worker's file, under the shared lock.

Files are read with `dbfile.read_values`, never with prometheus_client's own
reader: a file still being created reads as empty, and a file that does not add
up is left out of the scrape whole (logged once) instead of failing it with a 500.
"""
import glob
import json
import logging
import os
import time

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .dbfile import CorruptFile, read_values
from .multiprocess import SUMMED_TYPES, locked, quarantined

log = logging.getLogger(__name__)

# A file that fails to read may be caught mid-write by a live worker: look again before giving up.
READ_ATTEMPTS = 3
RETRY_DELAY = 0.005

_reported: set[str] = set()


class LockedMultiProcessCollector(MultiProcessCollector):
    """Every worker's files, read under the shared lock, never failing on one file."""

    def collect(self):
        with locked(self._path, exclusive=False):
            metrics = _read_metrics(glob.glob(os.path.join(self._path, "*.db")))
            aside = quarantined(self._path)
        families = list(MultiProcessCollector._accumulate_metrics(metrics, accumulate=True))
        families.append(GaugeMetricFamily(
            "gateway_metrics_quarantined_files",
            "Metrics files set aside as unreadable by the fold of a dead worker (see the log for their names).",
            value=aside,
        ))
        return families


def _read_for_scrape(name: str, keys: dict) -> list:
    """Samples of one file, all or none: [(metric, help, sample, labels, value, timestamp)]."""
    for attempt in range(READ_ATTEMPTS):
        try:
            return _samples(name, keys)
        except FileNotFoundError:
            return []  # a live gauge's file, removed as its worker died
        except (CorruptFile, OSError) as exc:
            error = exc
            if attempt + 1 < READ_ATTEMPTS:
                time.sleep(RETRY_DELAY)
    if name not in _reported:
        _reported.add(name)
        log.error("metrics: %s is unreadable (%s): left out of scrapes until its worker's files are folded", name, error)
    return []


def _samples(name: str, keys: dict) -> list:
    kind, mode, pid = _file_kind(name)
    samples = []
    for key, value, timestamp in read_values(name):
        if key not in keys:
            metric_name, sample_name, labels, help_text = json.loads(key)
            keys[key] = metric_name, sample_name, tuple(sorted(labels.items())), help_text
        metric_name, sample_name, labels_key, help_text = keys[key]
        if kind == "histogram" and sample_name.endswith("_bucket"):
            _bucket_bound(labels_key)
        if kind == "gauge":
            labels_key += (("pid", pid),)
        samples.append((metric_name, help_text, sample_name, labels_key, value, timestamp))
    return samples


def _file_kind(name: str) -> tuple[str, str | None, str | None]:
    """(type, gauge mode, pid) from prometheus_client's file names: counter_<pid>.db, gauge_<mode>_<pid>.db."""
    parts = os.path.basename(name)[:-len(".db")].split("_")
    kind = parts[0]
    if kind in SUMMED_TYPES:
        return kind, None, None
    if kind == "gauge" and len(parts) >= 3:
        return kind, parts[1], parts[-1]
    raise CorruptFile("not a prometheus_client file name")


def _bucket_bound(labels_key) -> None:
    try:
        float(dict(labels_key)["le"])
    except (KeyError, ValueError) as exc:
        raise CorruptFile("a histogram bucket without a numeric le") from exc


def _read_metrics(files) -> dict:
    """prometheus_client's MultiProcessCollector._read_metrics, on our reader, one whole file at a time."""
    metrics, keys = {}, {}
    for name in files:
        kind = os.path.basename(name).split("_")[0]
        for metric_name, help_text, sample_name, labels_key, value, timestamp in _read_for_scrape(name, keys):
            metric = metrics.get(metric_name)
            if metric is None:
                metric = metrics[metric_name] = Metric(metric_name, help_text, kind)
            if kind == "gauge":
                metric._multiprocess_mode = _file_kind(name)[1]
                metric.add_sample(sample_name, labels_key, value, timestamp)
            else:
                metric.add_sample(sample_name, labels_key, value)
    return metrics
