"""The documented migration commands work from the venv without activating it, and log one line."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.servers import ROOT

pytestmark = pytest.mark.slow  # the operator commands, each a fresh Python process

VENV_BIN = Path(sys.executable).parent


def run(argv, tmp_path, database_url, cwd):
    # No VIRTUAL_ENV, and a PATH without the venv: as in a fresh shell, or under systemd.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": database_url}
    env.update({key: os.environ[key] for key in ("PYTHONPATH",) if key in os.environ})
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def tables(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()


def test_python_dash_m_app_migrate_logs_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    done = run([str(VENV_BIN / "python"), "-m", "app.migrate"], tmp_path, url, ROOT)
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "database schema migrated from empty to" in lines[0], lines
    assert len(tables(url)) == 1


def test_alembic_from_the_venv_works_from_any_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    done = run([str(VENV_BIN / "alembic"), "-c", str(ROOT / "migrations" / "alembic.ini"), "upgrade", "head"],
               tmp_path, url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "JWT_SECRET_KEY" not in done.stderr
    assert len(tables(url)) == 1
