"""Every supervisor waits for the whole stop sequence before it kills: drain delay, graceful timeout, margin."""
import re
from pathlib import Path

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def default_stop_seconds() -> float:
    conf = (ROOT / "gunicorn.conf.py").read_text()
    margin = int(re.search(r"^STOP_MARGIN_SECONDS = (\d+)$", conf, re.M)[1])
    defaults = Settings.from_env({})
    return defaults.drain_delay_seconds + defaults.gunicorn_graceful_timeout + margin


def test_systemd_and_pm2_wait_for_the_stop_sequence():
    unit = (ROOT / "monitoring" / "deploy" / "ai-chat-gateway.service").read_text()
    assert int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M)[1]) > default_stop_seconds()
    ecosystem = (ROOT / "monitoring" / "ecosystem.config.js").read_text()
    gateway_app = ecosystem[ecosystem.index("gateway`"):ecosystem.index("prometheus`")]
    assert int(re.search(r"kill_timeout: (\d+)", gateway_app)[1]) / 1000 > default_stop_seconds()
