"""The deadline watchdog wakes only for a new first deadline: a call added later with a sooner deadline is still
cancelled on time, and calls behind the first are cancelled in turn."""
import threading
import time

from app.llm.calls import _Watchdog


class Call:
    def __init__(self):
        self.cancelled = threading.Event()

    def cancel(self, *, expired: bool = False) -> None:
        assert expired
        self.cancelled.set()


def asleep(watchdog: _Watchdog) -> None:
    """Until the watchdog's thread waits on its condition (threading.Condition keeps its waiters in _waiters)."""
    deadline = time.monotonic() + 5
    while not watchdog._wake._waiters:
        assert time.monotonic() < deadline, "the watchdog never went to sleep"
        time.sleep(0.005)


def test_a_sooner_deadline_added_behind_a_later_one_is_kept():
    watchdog, now = _Watchdog(), time.monotonic()
    late, soon, next_ = Call(), Call(), Call()
    watchdog.add(now + 60, late)  # the watchdog sleeps until this one...
    asleep(watchdog)
    watchdog.add(now + 0.2, soon)  # ...so this one must wake it
    watchdog.add(now + 0.4, next_)  # behind `soon`: no wake needed, it is next in line
    assert soon.cancelled.wait(5) and next_.cancelled.wait(5)
    assert not late.cancelled.is_set()


def test_a_finished_call_is_not_cancelled():
    watchdog, now = _Watchdog(), time.monotonic()
    done, running = Call(), Call()
    watchdog.add(now + 0.2, done)
    watchdog.add(now + 0.3, running)
    watchdog.discard(done)
    assert running.cancelled.wait(5)
    assert not done.cancelled.is_set()
