from ..auth.identity import current_caller
from ..auth.required import auth_required
from ..db import get_session
from ..http.openapi import Blueprint, may_fail
from ..llm import get_llm
from . import service
from .schemas import (
    ConversationCreateSchema,
    ConversationDetailSchema,
    ConversationPageSchema,
    ConversationSchema,
    ConversationUpdateSchema,
    MessagePageArgsSchema,
    MessagePageSchema,
    PageArgsSchema,
)

bp = Blueprint("conversations", __name__, url_prefix="/conversations", description="Conversations and their messages")


@bp.post("")
@auth_required
@bp.arguments(ConversationCreateSchema)
@bp.response(201, ConversationSchema)
def create_conversation(data):
    """Start a conversation, optionally shared with an organisation"""
    return service.create(session=get_session(), catalogue=get_llm().catalogue, user_id=current_caller().user_id, data=data)


@bp.get("")
@auth_required
@bp.arguments(PageArgsSchema, location="query")
@bp.response(200, ConversationPageSchema)
def list_conversations(args):
    """My conversations and those of my organisations, newest first"""
    return service.list_visible(session=get_session(), user_id=current_caller().user_id, **args)


@bp.get("/<id>")
@auth_required
@bp.arguments(MessagePageArgsSchema(only=("limit",)), location="query")
@bp.response(200, ConversationDetailSchema)
def get_conversation(args, id):
    """One conversation with its newest messages, oldest first; older pages from GET .../messages"""
    return service.get_detail(session=get_session(), conversation_id=id, user_id=current_caller().user_id, **args)


@bp.get("/<id>/messages")
@auth_required
@bp.arguments(MessagePageArgsSchema, location="query")
@bp.response(200, MessagePageSchema)
def list_messages(args, id):
    """A page of a conversation's messages, oldest first; `cursor` pages back in time"""
    return service.list_messages(session=get_session(), conversation_id=id, user_id=current_caller().user_id, **args)


@bp.patch("/<id>")
@auth_required
@may_fail(403)
@bp.arguments(ConversationUpdateSchema)
@bp.response(200, ConversationSchema)
def update_conversation(data, id):
    """Change a conversation's title, prompt or settings (owner, or OWNER/ADMIN of its org)"""
    return service.update(
        session=get_session(), catalogue=get_llm().catalogue, conversation_id=id, user_id=current_caller().user_id, data=data
    )


@bp.delete("/<id>")
@auth_required
@may_fail(403)
@bp.response(204)
def delete_conversation(id):
    """Delete a conversation and its messages (owner, or OWNER/ADMIN of its org)"""
    service.delete(session=get_session(), conversation_id=id, user_id=current_caller().user_id)
