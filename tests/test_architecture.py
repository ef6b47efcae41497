"""The code map holds: layers and no cycles (import-linter), only app-wide modules at the root of app/,
and no module grows past 300 lines (docs/architecture.md)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 300
# What is app-wide; anything else belongs in a package (docs/architecture.md says which).
ROOT_MODULES = {"__init__.py", "config.py", "db.py", "errors.py", "extensions.py", "logs.py", "migrate.py",
                "models.py", "version.py"}


def test_imports_follow_the_layers_and_never_cycle():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", "tests/importlinter.ini", "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_no_module_is_longer_than_the_limit():
    lengths = {path.relative_to(ROOT): len(path.read_text().splitlines()) for path in (ROOT / "app").rglob("*.py")}
    assert lengths, "no module found"
    assert {path: n for path, n in lengths.items() if n > MAX_LINES} == {}


def test_the_root_of_app_holds_only_app_wide_modules():
    assert {path.name for path in (ROOT / "app").glob("*.py")} == ROOT_MODULES
