"""Redis databases for the tests that flush theirs: one per parallel test process, in bands that never overlap.

Redis has 16 databases. `bench.rolling` takes 15; each band below holds one database per pytest-xdist
process, so the suite runs at most BAND processes at once (`-n` in tests/pytest.ini).
"""
import os

BAND = 7
RATE_LIMITS = 1   # 1-7: tests/admission/test_rate_limits.py and the modules sharing its counters
LIMIT_KEYS = 8    # 8-14: tests/admission/test_limit_keys.py


def redis_url(band: int) -> str:
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    if worker >= BAND:
        raise RuntimeError(f"test process {worker}: only {BAND} parallel processes have a Redis database of their "
                           f"own (lower -n in tests/pytest.ini, or widen the bands in {__name__})")
    return f"redis://127.0.0.1:6379/{band + worker}"
