from flask import current_app

from ..admission import rate_limits
from ..admission.chat_cap import limit_concurrent_chats
from ..admission.stream_cap import limit_user_streams
from ..auth.identity import current_caller
from ..auth.required import auth_required
from ..db import get_session, session_factory
from ..http.openapi import Blueprint, may_fail
from ..llm import get_llm
from ..upstreams import get_router
from . import completions, embeddings, streaming
from .errors import in_openai_shape
from .responses import (COMPLETION_DOC, EmbeddingListSchema, OpenAIErrorSchema, OpenAIModelListSchema,
                        OpenAIModelSchema)
from .embedding_schemas import EmbeddingRequestSchema
from .schemas import ChatCompletionRequestSchema

bp = Blueprint("v1", __name__, url_prefix="/v1", error_schema=OpenAIErrorSchema,
               description="OpenAI-compatible API: point any OpenAI SDK at /v1 with an API key (or an access token)")
bp.after_request(in_openai_shape)


@bp.get("/models")
@auth_required(scope="inference")
@bp.doc(responses={"200": {"description": "OK", "content": {"application/json": {"schema": OpenAIModelListSchema}}}})
def list_models():
    """The models this gateway accepts, as OpenAI lists them"""
    return completions.model_list(get_llm().catalogue)


@bp.get("/models/<path:model_id>")
@auth_required(scope="inference")
@may_fail(404)  # model_not_found
@bp.doc(responses={"200": {"description": "OK", "content": {"application/json": {"schema": OpenAIModelSchema}}}})
def get_model(model_id):
    """One model of the catalogue, as OpenAI describes it"""
    return completions.one_model(get_llm().catalogue, model_id)


@bp.post("/chat/completions")
@limit_concurrent_chats  # the same per-worker cap as the chat routes: /v1 holds provider calls just as long
@auth_required(scope="inference")
@rate_limits.chat
@may_fail(404)  # model_not_found, as OpenAI answers
@bp.arguments(ChatCompletionRequestSchema)
@bp.doc(responses={"200": COMPLETION_DOC})
@limit_user_streams(lambda data: bool(data.get("stream")))
def create_chat_completion(data):
    """A chat completion, whole (`chat.completion`) or streamed (`chat.completion.chunk` events)"""
    llm = get_llm()
    call = completions.prepare(db_sessions=session_factory(), catalogue=llm.catalogue, caller=current_caller(),
                               data=data)
    if not call.stream:
        return completions.complete(router=get_router(), call=call)
    return streaming.start_stream(router=get_router(), call=call,
                                  heartbeat_seconds=current_app.config["SETTINGS"].heartbeat_seconds)


@bp.post("/embeddings")
@auth_required(scope="inference")
@rate_limits.chat  # the same per-user limit: an embedding call holds a provider as a chat does
@may_fail(404)  # model_not_found
@bp.arguments(EmbeddingRequestSchema)
@bp.doc(responses={"200": {"description": "OK", "content": {"application/json": {"schema": EmbeddingListSchema}}}})
def create_embeddings(data):
    """Embeddings of a string, a list of strings, or token arrays (where the provider takes them)"""
    llm = get_llm()
    return embeddings.create(session=get_session(), db_sessions=session_factory(), catalogue=llm.catalogue,
                             router=get_router(), caller=current_caller(), data=data)
