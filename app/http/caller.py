"""Who is calling, as established by authentication: the one answer every route and limit uses."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g
from flask_jwt_extended import get_jwt_identity

from ..errors import ApiError

API_KEY_CALLER = "api_key_caller"  # where auth puts the caller of a request that used an API key


@dataclass(frozen=True)
class Caller:
    user_id: str
    api_key_id: str | None = None  # set when the caller authenticated with an API key
    org_id: str | None = None  # the org an API key is scoped to: the caller sees that org and nothing else
    models: tuple[str, ...] | None = None  # an API key's allow-list of models; None: any model
    key_budgeted: bool = False  # the API key has monthly limits of its own (read with the key, every request)

    @property
    def budgeted_key_id(self) -> str | None:
        """The API key whose own budget a chat must be within; None skips that query."""
        return self.api_key_id if self.key_budgeted else None

    def check_model(self, model: str) -> None:
        """403 model_not_allowed for a model outside an API key's allow-list."""
        if self.models is not None and model not in self.models:
            raise ModelNotAllowed(model)


class ModelNotAllowed(ApiError):
    def __init__(self, model: str):
        super().__init__(403, "model_not_allowed", f"This API key may not use the model `{model}`",
                         {"model": model})


def current_caller() -> Caller:
    """The authenticated caller of this request; only call it behind auth_required."""
    caller = g.get(API_KEY_CALLER)
    return caller if caller is not None else Caller(user_id=get_jwt_identity())
