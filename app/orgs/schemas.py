from marshmallow import fields, validate

from ..http.schemas import CamelSchema
from ..models import OrgRole


class OrgCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class OrgSchema(CamelSchema):
    id = fields.String()
    name = fields.String()
    created_at = fields.DateTime()
    role = fields.Enum(OrgRole, metadata={"description": "The caller's role in this organisation"})


class MemberAddSchema(CamelSchema):
    email = fields.Email(required=True)
    role = fields.Enum(OrgRole, load_default=OrgRole.MEMBER)


class MemberSchema(CamelSchema):
    user_id = fields.String()
    email = fields.String(attribute="user.email")
    name = fields.String(attribute="user.name", allow_none=True)
    role = fields.Enum(OrgRole)
    created_at = fields.DateTime()
