"""What metric names and labels a PromQL expression refers to, and whether the gateway exposes them.

A small PromQL lexer, not a full parser: enough to find every vector selector
(metric name plus label matchers) and every grouping label list (by, without,
on, ignoring, group_left, group_right) in the expressions of our dashboard and
rule files. It raises on anything it does not understand rather than guessing,
so an expression it cannot read fails the test instead of slipping through.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.metrics import MetricWrapperBase

# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})

# Computed at scrape time by the gateway for the gunicorn master and each live
# worker (not in app.metrics.definitions), plus Prometheus' own `up`.
PROCESS_METRICS = {
    "process_resident_memory_bytes": frozenset({"role", "pid"}),
    "process_cpu_seconds_total": frozenset({"role", "pid"}),
    "process_start_time_seconds": frozenset({"role", "pid"}),
    "process_open_fds": frozenset({"role", "pid"}),
}
SCRAPE_METRICS = {"up": frozenset()}

GROUPING_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
OTHER_KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"})

_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}@])
    """,
    re.VERBOSE,
)


@dataclass
class Selector:
    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)


@dataclass
class References:
    selectors: list[Selector] = field(default_factory=list)
    grouping_labels: set[str] = field(default_factory=set)

    @property
    def metric_names(self) -> set[str]:
        return {s.name for s in self.selectors}


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 30]!r} in {expr!r}")
        pos = match.end()
        if match.lastgroup not in ("ws", "comment"):
            out.append((match.lastgroup, match.group()))
    return out


def _unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    return bytes(token[1:-1], "utf-8").decode("unicode_escape")


def parse(expr: str) -> References:
    """Every vector selector and grouping label in a PromQL expression."""
    tokens = _tokens(expr)
    refs = References()
    i = 0

    def matchers_from(start: int) -> tuple[list[tuple[str, str, str]], int]:
        # tokens[start] is "{"; returns the matchers and the index after "}".
        found, j = [], start + 1
        while tokens[j] != ("op", "}"):
            if tokens[j] == ("op", ","):
                j += 1
                continue
            (kind_l, label), (kind_o, op), (kind_v, value) = tokens[j:j + 3]
            if kind_l != "ident" or op not in ("=", "!=", "=~", "!~") or kind_v != "string":
                raise ValueError(f"cannot read label matcher {tokens[j:j + 3]} in {expr!r}")
            found.append((label, op, _unquote(value)))
            j += 3
        return found, j + 1

    while i < len(tokens):
        kind, value = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else (None, None)
        if kind == "ident" and value in GROUPING_KEYWORDS:
            if nxt == ("op", "("):
                j = i + 2
                while tokens[j] != ("op", ")"):
                    if tokens[j][0] == "ident":
                        refs.grouping_labels.add(tokens[j][1])
                    elif tokens[j] != ("op", ","):
                        raise ValueError(f"unexpected {tokens[j]} in a label list of {expr!r}")
                    j += 1
                i = j + 1
            else:
                i += 1
            continue
        if kind == "ident" and value.lower() in OTHER_KEYWORDS:
            i += 1
            continue
        if kind == "ident" and (nxt == ("op", "(") or (nxt[0] == "ident" and nxt[1] in ("by", "without"))):
            i += 1  # a function, or an aggregation operator (`sum by (x) (...)`)
            continue
        if kind == "ident":
            selector = Selector(value)
            i += 1
            if i < len(tokens) and tokens[i] == ("op", "{"):
                selector.matchers, i = matchers_from(i)
            refs.selectors.append(selector)
            continue
        if (kind, value) == ("op", "{"):
            matchers, i = matchers_from(i)
            names = [v for (label, op, v) in matchers if label == "__name__" and op == "="]
            if not names:
                raise ValueError(f"selector without a plain metric name in {expr!r}")
            refs.selectors.append(Selector(names[0], [m for m in matchers if m[0] != "__name__"]))
            continue
        i += 1
    return refs


def exposed_series(definitions_module) -> dict[str, frozenset[str]]:
    """Series name -> label names, for every prometheus_client metric the module defines,
    plus the per-process metrics and `up`. Target labels (job, instance) are not included."""
    series: dict[str, frozenset[str]] = {}
    for obj in vars(definitions_module).values():
        if not isinstance(obj, MetricWrapperBase):
            continue
        name, labels = obj._name, frozenset(obj._labelnames)
        kind = obj._type
        if kind == "counter":
            series[f"{name}_total"] = labels
        elif kind == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_sum"] = labels
            series[f"{name}_count"] = labels
        elif kind == "summary":
            series[name] = labels | {"quantile"}
            series[f"{name}_sum"] = labels
            series[f"{name}_count"] = labels
        elif kind == "info":
            series[f"{name}_info"] = labels
        else:  # gauge, enum/stateset
            series[name] = labels | ({name} if kind == "stateset" else frozenset())
    # Gauges a collector computes at scrape time (the per-org usage), declared beside the others.
    for name, (_help, labels) in getattr(definitions_module, "USAGE_GAUGES", {}).items():
        series[name] = frozenset(labels)
    series.update(PROCESS_METRICS)
    series.update(SCRAPE_METRICS)
    return series


def check(expr: str, exposed: dict[str, frozenset[str]], *, recorded: frozenset[str] = frozenset(),
          extra_labels: set[str] = frozenset(), enums: dict[str, set[str]] | None = None) -> list[str]:
    """Problems with one expression: unknown metrics, unknown labels, unknown label values.

    `recorded` names (recording rules) are accepted as metrics; when an expression
    uses one, grouping labels are not checked (its labels are the rule's business).
    `extra_labels` are labels the caller refers to outside the expression (legends).
    `enums` maps a label name to its only valid values (e.g. outcome)."""
    refs = parse(expr)
    problems = []
    labels_in_scope = set(TARGET_LABELS)
    uses_recorded = False
    for selector in refs.selectors:
        if selector.name in recorded:
            uses_recorded = True
            continue
        if selector.name not in exposed:
            problems.append(f"unknown metric {selector.name!r}")
            continue
        allowed = exposed[selector.name] | TARGET_LABELS
        labels_in_scope |= allowed
        for label, op, value in selector.matchers:
            if label not in allowed:
                problems.append(f"{selector.name} has no label {label!r}")
            if enums and label in enums:
                for part in _literal_values(op, value):
                    if part not in enums[label]:
                        problems.append(f"{selector.name}{{{label}}} has no value {part!r}")
    if not uses_recorded:
        for label in (refs.grouping_labels | set(extra_labels)) - labels_in_scope:
            problems.append(f"label {label!r} is on none of the metrics used")
    return problems


def _literal_values(op: str, value: str) -> list[str]:
    if op in ("=", "!="):
        return [value]
    # regex: check plain alternations only ("a|b|c"); anything fancier is not an enum match
    parts = value.split("|")
    if all(re.fullmatch(r"[A-Za-z0-9_]+", p) for p in parts):
        return parts
    return []
