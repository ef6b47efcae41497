"""The data model, shared by every resource package."""
import enum
import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from decimal import Decimal

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Enum, Float, ForeignKey, Index, Integer, Numeric,
                        String, Text, TypeDecorator, UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class OrgRole(str, enum.Enum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MEMBER = "MEMBER"


class MessageRole(str, enum.Enum):
    SYSTEM = "SYSTEM"
    USER = "USER"
    ASSISTANT = "ASSISTANT"
    TOOL = "TOOL"


class UtcDateTime(TypeDecorator):
    """A moment in UTC: TIMESTAMP WITH TIME ZONE, read back aware on every database.

    SQLite keeps no zone and hands datetimes back naive; they were all written in
    UTC, so they come back as UTC here, once, and nothing above has to guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _enum(cls: type[enum.Enum]) -> Enum:
    # A VARCHAR rather than a native type, so both databases migrate the same way.
    return Enum(cls, native_enum=False, length=16, validate_strings=True)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Stored lower-cased, so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    name: Mapped[Optional[str]] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Set by an operator (`flask disable-user`): every token of the account stops at once, and login is refused.
    disabled_at: Mapped[Optional[datetime]] = mapped_column(UtcDateTime())


class TokenFamily(Base):
    """One login session: every access and refresh token descended from one login carries its id (`fam`).

    Revoking the row revokes them all, on every worker and instance, with one
    indexed lookup per request. `refresh_jti` is the one refresh token of the
    family still unspent: rotation swaps it with a conditional UPDATE, so
    presenting an older one is detected as reuse.
    """

    __tablename__ = "token_families"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    refresh_jti: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # When the current refresh token expires: past it, the row serves no token and may be deleted.
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UtcDateTime())


class Org(Base):
    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    members: Mapped[list["OrgMember"]] = relationship(
        back_populates="org", cascade="all, delete-orphan", passive_deletes=True
    )


class OrgMember(Base):
    __tablename__ = "org_members"
    __table_args__ = (UniqueConstraint("org_id", "user_id", name="uq_org_members_org_user"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[OrgRole] = mapped_column(_enum(OrgRole))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    org: Mapped[Org] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_user_updated", "user_id", "updated_at"),
        Index("ix_conversations_org_updated", "org_id", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[Optional[str]] = mapped_column(ForeignKey("orgs.id", ondelete="SET NULL"))
    title: Mapped[Optional[str]] = mapped_column(String(200))
    system_prompt: Mapped[Optional[str]] = mapped_column(Text)
    model: Mapped[Optional[str]] = mapped_column(String(200))
    temperature: Mapped[Optional[float]] = mapped_column(Float)
    top_p: Mapped[Optional[float]] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    messages: Mapped[list["Message"]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Message.created_at",
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_created", "conversation_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[MessageRole] = mapped_column(_enum(MessageRole))
    content: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class ApiKey(Base):
    """A long-lived bearer credential that acts as its user, optionally only within one org."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[Optional[str]] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # The first characters of the key, so a person can tell their keys apart; never enough to use it.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[Optional[datetime]] = mapped_column(UtcDateTime())
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UtcDateTime())


USD_PLACES = 10  # a millionth of a cent, far below any real price's step
USD_QUANTUM = Decimal(1).scaleb(-USD_PLACES)


class Usd(TypeDecorator):
    """Exact decimal USD, 10 places: NUMERIC(20, 10) on PostgreSQL, an integer of 1e-10 USD on SQLite.

    SQLite's NUMERIC is a float, so SUM() and `cost_usd + :c` there would round;
    counting in integer units keeps totals exact on both databases.
    """

    impl = Numeric(20, USD_PLACES, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, USD_PLACES, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(str(value)).quantize(USD_QUANTUM)
        return int(value.scaleb(USD_PLACES)) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-USD_PLACES).quantize(USD_QUANTUM)
        return Decimal(value).quantize(USD_QUANTUM)


class UsageRecord(Base):
    """One completion, whole, streamed, partial or failed: who, which model, how many tokens, what it cost.

    Written in the same transaction as the assistant message where there is one.
    Rows outlive their conversation and API key (SET NULL): usage is billing
    data, and deleting a chat does not undo what it cost.
    """

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_org_created", "org_id", "created_at"),
        Index("ix_usage_records_user_created", "user_id", "created_at"),
        Index("ix_usage_records_conversation", "conversation_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[Optional[str]] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    api_key_id: Mapped[Optional[str]] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    conversation_id: Mapped[Optional[str]] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    message_id: Mapped[Optional[str]] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    method: Mapped[str] = mapped_column(String(16))  # reported | chunks | characters | none
    cost_usd: Mapped[Optional[Decimal]] = mapped_column(Usd())  # None: the model has no price
    outcome: Mapped[str] = mapped_column(String(32))
    duration_ms: Mapped[Optional[float]] = mapped_column(Float)
    time_to_first_token_ms: Mapped[Optional[float]] = mapped_column(Float)


class OrgBudget(Base):
    """An org's monthly limits; either may be absent. Months are calendar months in UTC."""

    __tablename__ = "org_budgets"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True)
    monthly_tokens: Mapped[Optional[int]] = mapped_column(BigInteger)
    monthly_cost_usd: Mapped[Optional[Decimal]] = mapped_column(Usd())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


def month_key(moment: datetime) -> str:
    """"2026-11": the UTC month of `moment`, as org_usage_months keys it."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m")


class OrgUsageMonth(Base):
    """An org's running total for one UTC month, kept beside the usage rows in the same transaction.

    Budget checks read this one row instead of summing a month of usage, and
    its atomic increments (UPDATE ... SET tokens = tokens + n) stay exact across
    workers and instances.
    """

    __tablename__ = "org_usage_months"

    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-11"
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Usd(), default=Decimal(0))
