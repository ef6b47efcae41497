"""The health board on its own: ejection after K failures, the doubling cooldown, the half-open trial, the choice."""
import pytest

from app.llm import ModelSpec, Timeouts
from app.upstreams import health
from app.upstreams.health import HealthBoard, HealthRules


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(health.time, "monotonic", clock)
    return clock


def spec(name, weight=1.0):
    return ModelSpec("m", "ollama", f"http://{name}:1", "m", Timeouts(1, 1), upstream=name, weight=weight)


A, B = spec("a"), spec("b")


def fail(board, upstream, times=1):
    for _ in range(times):
        assert board.choose([upstream], anyway=True) == upstream
        board.ended(upstream, failed=True)


def test_ejected_after_k_failures_for_a_doubling_cooldown_with_a_half_open_trial(clock):
    board = HealthBoard(HealthRules(eject_after=3, cooldown=10, max_cooldown=25))
    fail(board, A, 2)
    assert board.snapshot(A)["state"] == "healthy"
    fail(board, A)
    assert board.snapshot(A)["state"] == "ejected"
    assert board.choose([A, B], anyway=True) == B  # B is healthy: A is left alone
    board.ended(B, latency=0.1)

    clock.now += 10
    assert board.snapshot(A)["state"] == "half_open"
    assert board.choose([A], anyway=False) == A  # the one trial...
    assert board.choose([A], anyway=False) is None  # ...and no second call meanwhile
    board.ended(A, failed=True)
    assert board.snapshot(A)["cooldown_left_seconds"] == 20  # doubled
    clock.now += 20
    fail(board, A)
    assert board.snapshot(A)["cooldown_left_seconds"] == 25  # capped
    clock.now += 25
    board.choose([A], anyway=False)
    board.ended(A, latency=0.2)
    assert board.snapshot(A)["state"] == "healthy"


def test_all_ejected_tries_the_least_recently_failed(clock):
    board = HealthBoard(HealthRules(eject_after=1, cooldown=60, max_cooldown=60))
    fail(board, A)
    clock.now += 1
    fail(board, B)
    assert board.choose([A, B], anyway=False) is None
    assert board.choose([A, B], anyway=True) == A


def test_weight_and_calls_in_progress_decide_latency_breaks_ties(clock):
    board = HealthBoard(HealthRules(eject_after=3, cooldown=1, max_cooldown=1))
    heavy = spec("heavy", weight=2)
    picks = [board.choose([A, heavy], anyway=True).upstream for _ in range(6)]  # none ends: all in progress
    assert picks.count("heavy") == 4 and picks.count("a") == 2
    fresh = HealthBoard(board.rules)
    for upstream, latency in ((A, 0.15), (B, 0.1)):  # within 2x: a tie on load, broken by latency
        fresh.choose([upstream], anyway=True)
        fresh.ended(upstream, latency=latency)
    assert fresh.choose([A, B], anyway=True) == B
    assert fresh.choose([A, B], anyway=True) == A  # B is busier now: load first


def test_a_clearly_slower_upstream_counts_its_load_over(clock):
    board = HealthBoard(HealthRules(eject_after=3, cooldown=1, max_cooldown=1))
    for upstream, latency in ((A, 1.0), (B, 0.1)):
        board.choose([upstream], anyway=True)
        board.ended(upstream, latency=latency)
    picks = [board.choose([A, B], anyway=True).upstream for _ in range(8)]
    assert picks.count("a") == 0  # 10x slower: B is preferred until it holds 10 calls
    clock.now += health.LATENCY_MEMORY
    assert board.choose([A, B], anyway=True) == A  # an old figure no longer counts: A is measured again


def test_the_probe_ejects_and_ends_a_cooldown(clock):
    board = HealthBoard(HealthRules(eject_after=3, cooldown=60, max_cooldown=60))
    board.probed(A, up=False)
    assert board.snapshot(A)["state"] == "ejected"
    board.probed(A, up=True)
    assert board.snapshot(A)["state"] == "half_open"
