"""Whether this instance should get new traffic: /readyz's answer, with the reason when it should not."""
import logging

from alembic.runtime.migration import MigrationContext
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from ..boot import draining
from ..migrate import head_revision

log = logging.getLogger(__name__)

# Every reason /readyz can give, in the order they are checked.
REASONS = ("draining", "database_unreachable", "schema_not_at_head")


def unready_reason() -> str | None:
    """None when ready; otherwise the first reason not to send this instance new requests."""
    if reason := draining.reason():
        return reason
    try:
        with current_app.extensions["db_engine"].connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return "database_unreachable"
    if current != head_revision():
        # Another instance (or the migration job) has not brought the schema to this code's head yet.
        return "schema_not_at_head"
    return None
