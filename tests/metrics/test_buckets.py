"""Time to first token and time per output token use the OpenTelemetry GenAI conventions' boundaries."""
import pytest
from prometheus_client import REGISTRY, generate_latest

from app.metrics.definitions import CHAT_TIME_PER_OUTPUT_TOKEN, CHAT_TIME_TO_FIRST_TOKEN
from tests.support.metrics import parse

OTEL = {
    # gen_ai.server.time_to_first_token
    "chat_time_to_first_token_seconds": [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                                         2.5, 5.0, 7.5, 10.0],
    # gen_ai.server.time_per_output_token
    "chat_time_per_output_token_seconds": [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5],
}


@pytest.mark.parametrize("histogram", [CHAT_TIME_TO_FIRST_TOKEN, CHAT_TIME_PER_OUTPUT_TOKEN], ids=lambda h: h._name)
def test_histogram_buckets_are_the_otel_genai_ones(histogram):
    histogram.labels("bucket-check").observe(0.07)
    samples = parse(generate_latest(REGISTRY).decode())
    buckets = {dict(pairs)["le"]: value for (name, pairs), value in samples.items()
               if name == f"{histogram._name}_bucket" and ("model", "bucket-check") in pairs}
    bounds = sorted(float(le) for le in buckets if le != "+Inf")
    assert bounds == OTEL[histogram._name]
    assert all(count == 0 for le, count in buckets.items() if le != "+Inf" and float(le) < 0.07)
    assert all(count >= 1 for le, count in buckets.items() if le == "+Inf" or float(le) >= 0.07)
