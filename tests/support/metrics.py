"""Reading /metrics the way Prometheus does."""
import requests
from prometheus_client.parser import text_string_to_metric_families


class Samples(dict):
    """{(sample name, frozenset of label pairs): value} from one scrape."""

    def value(self, name: str, **labels) -> float:
        return self.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels) -> float:
        """Sum over every series of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, pairs), v in self.items() if n == name and wanted <= pairs)

    def series(self, name: str) -> list[dict]:
        return [dict(pairs) for (n, pairs) in self if n == name]

    def counters(self) -> dict:
        return {key: v for key, v in self.items() if key[0].endswith(("_total", "_count", "_sum", "_bucket"))}


def parse(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(url: str, token: str | None = None, timeout: float = 10) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(url, headers=headers, timeout=timeout)
    response.raise_for_status()
    return parse(response.text)


def assert_never_decreases(snapshots) -> None:
    """No counter goes down or vanishes; only per-process series (pid label) end with their process."""
    for earlier, later in zip(snapshots, snapshots[1:]):
        for key, value in earlier.counters().items():
            if key not in later and any(name == "pid" for name, _ in key[1]):
                continue
            assert later.get(key, 0.0) >= value, (key, value, later.get(key))
