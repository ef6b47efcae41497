"""Every metric the gateway exposes, defined once at import.

Names, label names and buckets are a public contract: dashboards and alert
rules in ``monitoring/`` depend on them, and a test cross-checks that.
Creating metrics inside ``create_app()`` would raise DuplicateTimeseries on
the second app of a test run, hence module level.
"""
from prometheus_client import Counter, Gauge, Histogram

# The OpenTelemetry GenAI semantic conventions' advised boundaries
# (gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token),
# so our histograms line up with other GenAI servers' on one dashboard.
OTEL_TIME_TO_FIRST_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
OTEL_TIME_PER_OUTPUT_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

# Label value for requests that matched no URL rule: one series, not one per path.
UNMATCHED_ROUTE = "<unmatched>"

CHAT_OUTCOMES = ("success", "provider_error", "timeout", "client_disconnect", "internal_error", "shutting_down")

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests that ended, by method, route template and status code.",
    ["method", "route", "status_code"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request's arrival to its last byte sent (or the client leaving).",
    ["method", "route", "status_code"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
HTTP_IN_FLIGHT = Gauge(
    "http_requests_in_flight",
    "HTTP requests being served right now, across all workers.",
    multiprocess_mode="livesum",
)

CHAT_DURATION = Histogram(
    "chat_completion_duration_seconds",
    "Time to produce a whole chat completion, to the last streamed byte.",
    ["model", "streaming"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40),
)
CHAT_TOKENS = Counter(
    "chat_completion_tokens_total",
    "Tokens consumed by chat completions, as stored in the assistant messages.",
    ["model", "type"],
)
CHAT_COST = Counter(
    "chat_completion_cost_usd_total",
    "USD that chat completions cost, from their models' prices and the tokens stored in their usage rows; "
    "models without a price add nothing.",
    ["model"],
)
CHAT_USAGE_SOURCE = Counter(
    "chat_completion_usage_source_total",
    "Completions whose tokens were stored, by where the counts came from: reported by the provider, "
    "or counted by the gateway from streamed chunks or estimated from characters, or (tokenizer) the prompt "
    "counted by the server's tokenizer and the completion by streamed chunks.",
    ["model", "source"],
)
CHAT_TIME_TO_FIRST_TOKEN = Histogram(
    "chat_time_to_first_token_seconds",
    "Time from the upstream call to the first streamed token.",
    ["model"],
    buckets=OTEL_TIME_TO_FIRST_TOKEN_BUCKETS,
)
CHAT_TIME_PER_OUTPUT_TOKEN = Histogram(
    "chat_time_per_output_token_seconds",
    "Mean time between output tokens after the first, per completion.",
    ["model"],
    buckets=OTEL_TIME_PER_OUTPUT_TOKEN_BUCKETS,
)
CHAT_COMPLETIONS = Counter(
    "chat_completions_total",
    "Chat completions that ended, by outcome (success, provider_error, timeout, client_disconnect, internal_error, shutting_down).",
    ["model", "streaming", "outcome"],
)
CHAT_IN_FLIGHT = Gauge(
    "chat_completions_in_flight",
    "Chat completions (streamed or not) in progress right now, across all workers.",
    ["streaming"],
    multiprocess_mode="livesum",
)

CHAT_QUEUE_LENGTH = Gauge(
    "chat_start_queue_length",
    "Chats waiting for a start slot (CHAT_START_LIMIT per worker) right now, across all workers.",
    multiprocess_mode="livesum",
)
CHAT_QUEUE_WAIT = Histogram(
    "chat_start_queue_wait_seconds",
    "Time a chat waited for a start slot, admitted or refused after CHAT_QUEUE_TIMEOUT.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)

CHAT_GATEWAY_OVERHEAD = Histogram(
    "chat_gateway_overhead_seconds",
    "Time the gateway itself adds to a chat: everything but waiting for the model provider.",
    ["model", "streaming"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)

RATE_LIMIT_HITS = Counter(
    "rate_limit_hits_total",
    "Requests refused with 429 because they went over a rate limit, by limit name.",
    ["limit"],
)

BUILD_INFO = Gauge(
    "gateway_build_info",
    "Always 1; the labels carry the running version.",
    ["version", "python_version"],
    multiprocess_mode="livemax",
)

# Per-org usage for the current UTC month, computed from the database by app/metrics/usage.py at
# scrape time (gauges a collector yields, not prometheus_client wrappers): name -> (help, labels).
# `org` is an org id for the USAGE_METRICS_TOP_ORGS orgs at the top, and OTHER_ORG for the rest, so
# however many orgs there are, each of these has at most K+1 values of `org` (per `limit`).
OTHER_ORG = "other"
BUDGET_LIMITS = ("tokens", "cost")
USAGE_GAUGES = {
    "gateway_usage_month_tokens": (
        "Tokens used this UTC month, for the top orgs by tokens; org=\"other\" sums every other org.",
        ("org",)),
    "gateway_usage_month_cost_usd": (
        "USD spent this UTC month by the same orgs as gateway_usage_month_tokens; org=\"other\" sums the rest.",
        ("org",)),
    "gateway_usage_budget_used_ratio": (
        "This month's use over the monthly budget (1 = used up), per limit (tokens or cost), for the orgs "
        "with a budget that have used the most of it; org=\"other\" is the highest ratio among the rest.",
        ("org", "limit")),
    "gateway_usage_month_orgs": ("Orgs that have used tokens this UTC month.", ()),
    # The same for API keys: `api_key` is a key id (as the usage API shows it) for the
    # USAGE_METRICS_TOP_API_KEYS keys at the top, and OTHER_ORG ("other") for the rest.
    "gateway_usage_api_key_month_tokens": (
        "Tokens used this UTC month through the top API keys by tokens; api_key=\"other\" sums every other key.",
        ("api_key",)),
    "gateway_usage_api_key_month_cost_usd": (
        "USD spent this UTC month through the same API keys as gateway_usage_api_key_month_tokens; "
        "api_key=\"other\" sums the rest.",
        ("api_key",)),
    "gateway_usage_month_api_keys": ("API keys that have used tokens this UTC month.", ()),
    "gateway_usage_refreshed_timestamp_seconds": (
        "When the usage gauges were last read from the database (Unix time); they keep their values while it fails.",
        ()),
}

# Embeddings have a family of their own rather than an `operation` label on the chat_* metrics: those
# keep their meaning (and their dashboards), and an embedding has no streaming, first token or output.
EMBEDDING_REQUESTS = Counter(
    "embedding_requests_total",
    "Embedding requests (POST /v1/embeddings) that reached a provider, by outcome (as chat_completions_total).",
    ["model", "outcome"],
)
EMBEDDING_INPUTS = Counter(
    "embedding_inputs_total",
    "Inputs embedded successfully: one per string or token array.",
    ["model"],
)
EMBEDDING_TOKENS = Counter(
    "embedding_tokens_total",
    "Prompt tokens of successful embedding requests, as stored in their usage rows.",
    ["model"],
)
EMBEDDING_COST = Counter(
    "embedding_cost_usd_total",
    "USD that embedding requests cost, from their models' input prices; models without a price add nothing.",
    ["model"],
)
EMBEDDING_DURATION = Histogram(
    "embedding_duration_seconds",
    "Time from the upstream call to the provider's whole answer, per embedding request.",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)

# Upstreams: the servers behind each catalogue model (app/upstreams). `upstream` is an upstream's name
# from the catalogue, unique within its model: a bounded set.
UPSTREAM_OUTCOMES = ("success", "connect", "timeout", "reset", "http_5xx", "http_429", "http_408", "http_4xx",
                     "unreadable", "deadline", "cancelled")
UPSTREAM_REQUESTS = Counter(
    "chat_upstream_requests_total",
    "Calls to each upstream server (chat, streamed or whole, and embeddings), one per attempt, by outcome: "
    "success, or why the attempt failed.",
    ["model", "upstream", "outcome"],
)
UPSTREAM_DURATION = Histogram(
    "chat_upstream_duration_seconds",
    "Time from an attempt's start to its answer: a whole reply, or a stream's first token; successes only.",
    ["model", "upstream"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40),
)
UPSTREAM_UP = Gauge(
    "chat_upstream_up",
    "1 while an upstream takes calls, 0 while it is ejected (or half-open, awaiting its trial call). "
    "Per worker, and read as the highest over live workers: 0 means no worker sends it calls.",
    ["model", "upstream"],
    multiprocess_mode="livemax",
)
UPSTREAM_EJECTIONS = Counter(
    "chat_upstream_ejections_total",
    "Times a worker ejected an upstream: after consecutive failures, a failed half-open trial, or the probe.",
    ["model", "upstream"],
)
FAILOVERS = Counter(
    "chat_failovers_total",
    "Attempts that failed before the first token and were retried on another upstream or a fallback model, "
    "by the requested model and why the attempt failed.",
    ["model", "reason"],
)

# Traces (app/tracing): spans finished but never exported, by why.
TRACE_DROP_REASONS = ("queue_full", "export_failed")
TRACE_SPANS_DROPPED = Counter(
    "gateway_trace_spans_dropped_total",
    "Finished spans never exported: the queue was full (queue_full) or the collector did not take them (export_failed).",
    ["reason"],
)
