"""What /health answers, declared for the OpenAPI document."""
from marshmallow import fields

from ..http.schemas import CamelSchema
from .readiness import REASONS


class ProviderHealthSchema(CamelSchema):
    provider = fields.String(metadata={"description": "Provider kind: ollama or openai"})
    models = fields.List(fields.String(), metadata={"description": "Catalogue models served by this provider"})
    status = fields.String(metadata={"description": "up, down, or unknown before the first probe",
                                     "enum": ["up", "down", "unknown"]})
    upstreams = fields.List(fields.String(), metadata={"description": "Names of the upstreams at this server"})
    checked_at = fields.DateTime(allow_none=True, metadata={"description": "When this worker last probed it"})


class UpstreamHealthSchema(CamelSchema):
    model = fields.String()
    name = fields.String(metadata={"description": "The upstream's name in the catalogue (never its URL)"})
    provider = fields.String()
    weight = fields.Float()
    state = fields.String(metadata={"enum": ["healthy", "ejected", "half_open"], "description":
                                    "In this worker: healthy; ejected (no calls until its cooldown ends); "
                                    "half_open (its next call is a trial that decides)"})
    outstanding = fields.Integer(metadata={"description": "Calls in progress from this worker"})
    latency_ms = fields.Float(metadata={"description": "This worker's moving average of its time to answer"})
    cooldown_left_seconds = fields.Float(allow_none=True)


class HealthSchema(CamelSchema):
    status = fields.String(metadata={"description": "ok, or degraded when the database is down",
                                     "enum": ["ok", "degraded"]})
    env = fields.String()
    db = fields.String(metadata={"enum": ["up", "down"]})
    default_model = fields.String()
    version = fields.String()
    providers = fields.List(fields.Nested(ProviderHealthSchema), metadata={
        "description": "Reachability of each model provider, from a background probe; informational: "
                       "a provider that is down does not make the gateway unready"})
    upstreams = fields.List(fields.Nested(UpstreamHealthSchema), metadata={
        "description": "Each model's upstreams, as the worker that answered sees them (health is per worker)"})


class LivenessSchema(CamelSchema):
    status = fields.Constant("ok", required=True, metadata={"enum": ["ok"]})


class ReadinessSchema(CamelSchema):
    status = fields.String(required=True, metadata={"enum": ["ready", "unready"]})
    reason = fields.String(allow_none=True, metadata={
        "enum": list(REASONS), "description": "Why the instance is unready: draining (it got SIGTERM), "
        "database_unreachable, or schema_not_at_head; null when ready"})
