from flask import current_app
from flask_jwt_extended import get_jwt_identity

from ..chat_capacity import limit_concurrent_chats
from ..db import get_session
from ..rest import Blueprint, auth_required
from . import runtime, service, streaming
from .schemas import ChatReplySchema, ChatRequestSchema, ModelListSchema

bp = Blueprint("chat", __name__, description="Chat with a model, whole or streamed, and the models on offer")
bp.record_once(lambda state: runtime.init_app(state.app))

SSE_DOC = {
    "description": "Server-sent events: `token` events, then one `end` (or `error`) event",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _start_turn(conversation_id: str, data: dict) -> service.Turn:
    chat = runtime.get_runtime()
    return service.start_turn(session=get_session(), catalogue=chat.catalogue, context_budget=chat.context_budget,
                              conversation_id=conversation_id, user_id=get_jwt_identity(), data=data)


@bp.post("/conversations/<id>/messages")
@limit_concurrent_chats
@auth_required
@bp.arguments(ChatRequestSchema)
@bp.response(200, ChatReplySchema)
def send_message(data, id):
    """Send a message and get the model's whole reply"""
    turn = _start_turn(id, data)
    return service.complete_turn(session=get_session(), providers=runtime.get_runtime().providers, turn=turn)


@bp.post("/conversations/<id>/stream")
@limit_concurrent_chats
@auth_required
@bp.arguments(ChatRequestSchema)
@bp.doc(responses={"200": SSE_DOC})
def stream_message(data, id):
    """Send a message and stream the model's reply as server-sent events"""
    turn = _start_turn(id, data)
    chat = runtime.get_runtime()
    return streaming.start_stream(providers=chat.providers, db_sessions=current_app.extensions["db_sessionmaker"],
                                  turn=turn, heartbeat_seconds=chat.heartbeat_seconds)


@bp.get("/models")
@auth_required
@bp.response(200, ModelListSchema)
def list_models():
    """The models this gateway accepts"""
    catalogue = runtime.get_runtime().catalogue
    items = [{"name": spec.name, "provider": spec.provider, "is_default": spec.name == catalogue.default_model}
             for spec in catalogue]
    return {"items": items, "default_model": catalogue.default_model}
