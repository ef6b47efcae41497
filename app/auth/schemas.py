from marshmallow import fields, validate

from ..http.schemas import CamelSchema

MIN_PASSWORD = 8


class UserSchema(CamelSchema):
    id = fields.String(dump_only=True)
    email = fields.Email(dump_only=True)
    name = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


def _new_password() -> fields.String:
    return fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=MIN_PASSWORD, max=256, error="Password must be {min} to {max} characters long."),
    )


class RegisterSchema(CamelSchema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = _new_password()
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class LoginSchema(CamelSchema):
    email = fields.String(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=256))


class PasswordChangeSchema(CamelSchema):
    current_password = fields.String(required=True, load_only=True, validate=validate.Length(max=256))
    new_password = _new_password()


class LogoutSchema(CamelSchema):
    # Optional: the access token already names its session; this ends another one of the same account too.
    refresh_token = fields.String(load_default=None, validate=validate.Length(max=4096))


class TokenPairSchema(CamelSchema):
    access_token = fields.String()
    refresh_token = fields.String()


class SessionSchema(TokenPairSchema):
    user = fields.Nested(UserSchema)
