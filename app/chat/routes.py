from flask import current_app

from ..admission import rate_limits
from ..admission.chat_cap import limit_concurrent_chats
from ..admission.stream_cap import limit_user_streams
from ..auth.identity import current_caller
from ..auth.required import auth_required
from ..db import get_session, session_factory
from ..http.openapi import Blueprint, event_stream
from ..llm import get_llm
from ..upstreams import get_router
from . import streaming, turns
from .schemas import (ChatReplySchema, ChatRequestSchema, ModelListSchema, StreamEndSchema, StreamErrorSchema,
                      StreamTokenSchema)

bp = Blueprint("chat", __name__, description="Chat with a model, whole or streamed, and the models on offer")

SSE_DOC = event_stream(
    "Server-sent events, each one `data:` line of JSON told apart by its `type`: `token` events, then exactly "
    "one `end` (the stored reply and its usage, as POST .../messages returns them) or `error` (the provider "
    "failed or timed out mid-stream; the partial reply is stored). While the model is silent a `: keep-alive` "
    "comment comes every SSE_HEARTBEAT_SECONDS. A provider that fails before its first event gets a JSON "
    "502/504 instead of a stream.",
    StreamTokenSchema, StreamEndSchema, StreamErrorSchema)


def _start_turn(conversation_id: str, data: dict, *, store_now: bool) -> turns.Turn:
    settings = current_app.config["SETTINGS"]
    return turns.start_turn(session=get_session(), db_sessions=session_factory(),
                            catalogue=get_llm().catalogue, context_budget=settings.context_token_budget,
                            conversation_id=conversation_id, caller=current_caller(), data=data, store_now=store_now)


@bp.post("/conversations/<id>/messages")
@limit_concurrent_chats
@auth_required(scope="conversations")
@rate_limits.chat
@bp.arguments(ChatRequestSchema)
@bp.response(200, ChatReplySchema)
def send_message(data, id):
    """Send a message and get the model's whole reply"""
    turn = _start_turn(id, data, store_now=False)
    return turns.complete_turn(session=get_session(), router=get_router(), turn=turn)


@bp.post("/conversations/<id>/stream")
@limit_concurrent_chats
@auth_required(scope="conversations")
@rate_limits.chat
@bp.arguments(ChatRequestSchema)
@bp.doc(responses={"200": SSE_DOC})
@limit_user_streams()
def stream_message(data, id):
    """Send a message and stream the model's reply as server-sent events"""
    turn = _start_turn(id, data, store_now=True)
    return streaming.start_stream(router=get_router(), db_sessions=session_factory(), turn=turn,
                                  heartbeat_seconds=current_app.config["SETTINGS"].heartbeat_seconds)


@bp.get("/models")
@auth_required(scope="conversations")
@bp.response(200, ModelListSchema)
def list_models():
    """The models this gateway accepts"""
    catalogue = get_llm().catalogue
    items = [{"name": spec.name, "provider": spec.provider, "is_default": spec.name == catalogue.default_model}
             for spec in catalogue]
    return {"items": items, "default_model": catalogue.default_model}
