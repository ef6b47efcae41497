"""Accounts, credentials and tokens."""
from functools import lru_cache

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import Conflict, Forbidden, NotFound, Unauthorized
from ..models import User, utcnow
from . import sessions

BAD_CREDENTIALS = "Invalid email or password"


def _hash_method() -> str:
    # werkzeug's scrypt with N = 2**PASSWORD_HASH_COST, r = 8, p = 1 (its own default is N = 2**15).
    return f"scrypt:{2 ** current_app.config['PASSWORD_HASH_COST']}:8:1"


@lru_cache(maxsize=4)
def _dummy_hash(method: str) -> str:
    """Checked when the email is unknown, so both failures cost the same time."""
    return generate_password_hash("not-a-real-password", method=method)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_by_email(*, session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalise_email(email)))


def sign_up(*, session: Session, email: str, password: str, name: str | None) -> User:
    """Self-service registration, unless the operator closed it (operators use `register` from the shell)."""
    if not current_app.config["REGISTRATION_OPEN"]:
        raise Forbidden("Sign-up is closed on this gateway: ask an operator for an account", code="registration_closed")
    return register(session=session, email=email, password=password, name=name)


def register(*, session: Session, email: str, password: str, name: str | None) -> User:
    # Hash first: a taken email then costs as long as a new one, so timing does not tell which emails exist.
    password_hash = generate_password_hash(password, method=_hash_method())
    if find_by_email(session=session, email=email) is not None:
        raise Conflict("An account with this email already exists", {"email": ["Already registered."]})
    user = User(email=normalise_email(email), password_hash=password_hash, name=name)
    session.add(user)
    session.commit()
    return user


def authenticate(*, session: Session, email: str, password: str) -> User:
    user = find_by_email(session=session, email=email)
    if not check_password_hash(user.password_hash if user else _dummy_hash(_hash_method()), password) or user is None:
        raise Unauthorized(BAD_CREDENTIALS, code="invalid_credentials")
    # Said only to whoever knows the password: it tells nothing to someone guessing.
    if user.disabled_at is not None:
        raise Forbidden(sessions.DISABLED, code="account_disabled")
    return user


def get_user(*, session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Unauthorized(sessions.GONE, code="invalid_token")
    return user


def change_password(*, session: Session, user_id: str, current_password: str, new_password: str) -> User:
    """Set a new password and end every session of the account, this one included (the caller gets a new one)."""
    user = get_user(session=session, user_id=user_id)
    if not check_password_hash(user.password_hash, current_password):
        # 403, not 401: the access token is fine, and clients take a 401 to mean "log in again".
        raise Forbidden("The current password is wrong", code="wrong_password")
    user.password_hash = generate_password_hash(new_password, method=_hash_method())
    sessions.revoke(session=session, user_id=user.id, commit=False)
    session.commit()
    return user


def set_disabled(*, session: Session, email: str, disabled: bool) -> User:
    """For operators: a disabled account's tokens stop at once (see sessions.revocation); it cannot log in.

    Its sessions are revoked too, so enabling it again does not bring back tokens
    that may have leaked: the user logs in afresh.
    """
    user = find_by_email(session=session, email=email)
    if user is None:
        raise NotFound("Account")
    user.disabled_at = utcnow() if disabled else None
    if disabled:
        sessions.revoke(session=session, user_id=user.id, commit=False)
    session.commit()
    return user
