from datetime import timezone

from marshmallow import fields, post_load, validate

from ..http.schemas import CamelSchema


class ApiKeyCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    org_id = fields.String(allow_none=True, validate=validate.Length(max=36),
                           metadata={"description": "Scope the key to this org (you must be a member)"})
    expires_at = fields.AwareDateTime(allow_none=True, metadata={"description": "ISO 8601 with a time zone"})

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


class ApiKeyCreatedSchema(ApiKeySchema):
    key = fields.String(metadata={"description": "The key itself: shown this once, only its hash is stored"})
