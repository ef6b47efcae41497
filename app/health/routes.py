import json
import logging

from flask import Response, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..http.openapi import Blueprint
from ..llm import get_llm
from ..version import __version__
from .probe import probe_for
from .readiness import unready_reason
from .schemas import HealthSchema, LivenessSchema, ReadinessSchema

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__, description="Health and liveness probes")
# /livez's body never changes: serialised once (a schema dump and jsonify were a fifth of its CPU), as jsonify
# writes it.
LIVE_BODY = json.dumps(LivenessSchema().dump({"status": "ok"}), separators=(",", ":")) + "\n"


def database_is_up() -> bool:
    try:
        with current_app.extensions["db_engine"].connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return False


@bp.get("/health")
@bp.response(200, HealthSchema)
@bp.alt_response(503, schema=HealthSchema, description="The database is unreachable")
def health():
    """Readiness: the gateway and its database (503 when it is down), each provider's reachability and each upstream's state"""
    up = database_is_up()
    probe = probe_for(current_app._get_current_object())
    body = {
        "status": "ok" if up else "degraded",
        "env": current_app.config["APP_ENV"],
        "db": "up" if up else "down",
        "default_model": get_llm().catalogue.default_model,
        "version": __version__,
        "providers": probe.snapshot(),
        "upstreams": probe.upstreams(get_llm().catalogue),
    }
    return body, 200 if up else 503


@bp.get("/livez")
@bp.response(200, LivenessSchema)
def livez():
    """Liveness: answers as long as the process serves requests; never touches the database"""
    return Response(LIVE_BODY, mimetype="application/json")


@bp.get("/readyz")
@bp.response(200, ReadinessSchema)
@bp.alt_response(503, schema=ReadinessSchema, description="Send this instance no new requests; `reason` says why")
def readyz():
    """Readiness: database reachable, schema at this code's head, and not draining (503 with the reason otherwise)"""
    reason = unready_reason()
    if reason:
        return {"status": "unready", "reason": reason}, 503
    return {"status": "ready", "reason": None}
