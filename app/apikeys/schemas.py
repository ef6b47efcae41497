from datetime import timezone

from marshmallow import fields, post_load, validate

from ..http.openapi import ModelName
from ..http.schemas import CamelSchema
from ..models import API_KEY_SCOPES, DEFAULT_API_KEY_SCOPES
from ..usage.schemas import BudgetPutSchema, UsdString

SCOPES_DOC = ("What the key may do: `inference` (/v1), `conversations` (conversations, their messages and chats, "
              "/models, GET /auth/me), `usage:read` (the usage the user may read). Nothing else takes a key.")


class ApiKeyCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    org_id = fields.String(allow_none=True, validate=validate.Length(max=36),
                           metadata={"description": "Scope the key to this org (you must be a member)"})
    expires_at = fields.AwareDateTime(allow_none=True, metadata={"description": "ISO 8601 with a time zone"})
    scopes = fields.List(fields.String(validate=validate.OneOf(API_KEY_SCOPES)), validate=validate.Length(min=1),
                         load_default=lambda: list(DEFAULT_API_KEY_SCOPES),
                         metadata={"description": SCOPES_DOC + " Default: `[\"inference\"]`."})
    models = fields.List(ModelName(), allow_none=True, load_default=None, validate=validate.Length(min=1),
                         metadata={"description": "The only models the key may use (others: 403 "
                                                  "`model_not_allowed`); null: any model"})
    requests_per_minute = fields.Integer(strict=True, allow_none=True, load_default=None,
                                         validate=validate.Range(min=1, max=1_000_000),
                                         metadata={"description": "Requests a minute with this key, on every route "
                                                                  "(429 beyond); null: only the gateway's limits"})
    monthly_tokens = BudgetPutSchema._declared_fields["monthly_tokens"]
    monthly_cost_usd = BudgetPutSchema._declared_fields["monthly_cost_usd"]

    @post_load
    def _in_utc(self, data, **kwargs):
        # Stored as UTC, so SQLite's zone-less text compares correctly with the expiry check.
        if data.get("expires_at") is not None:
            data["expires_at"] = data["expires_at"].astimezone(timezone.utc)
        return data


class ApiKeySchema(CamelSchema):
    id = fields.String()
    name = fields.String()
    prefix = fields.String(metadata={"description": "The key's first characters, to recognise it"})
    user_id = fields.String()
    org_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True, metadata={"description": "Updated at most once a minute"})
    scopes = fields.List(fields.String(), metadata={"description": SCOPES_DOC})
    models = fields.List(fields.String(), allow_none=True)
    requests_per_minute = fields.Integer(allow_none=True)
    monthly_tokens = fields.Integer(allow_none=True)
    monthly_cost_usd = UsdString(allow_none=True)


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(metadata={"description": "The key itself: shown this once, only its hash is stored"})
