"""The README and docs/ stay navigable and true: every link and anchor resolves, every setting is documented."""
import re
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from app.config import Settings
from tests.support.servers import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The page without fenced code and inline code, where brackets and `#` are not Markdown."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(FENCE.sub("", page.read_text())):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(prose(page.read_text()))]


def test_the_slug_follows_github():
    assert slug("Without Docker: PM2") == "without-docker-pm2"
    assert slug("Dashboard \"AI chat gateway\"") == "dashboard-ai-chat-gateway"
    assert slug("`gunicorn` and the `GUNICORN_*` settings") == "gunicorn-and-the-gunicorn_-settings"
    assert slug("Operations, deploy and security") == "operations-deploy-and-security"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # another site: not checked here
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme_and_links_back():
    readme_links = {(ROOT / link.partition("#")[0]).resolve() for link in links(ROOT / "README.md")
                    if not re.match(r"[a-z]+:", link)}
    for page in sorted(DOCS.glob("*.md")):
        assert page in readme_links, f"{page.name} is not linked from the README"
    for page in PAGES[2:]:
        assert "../README.md" in links(page), f"{page.name} has no way back to the README"


def configuration_rows() -> dict[str, str]:
    """`NAME` -> its Default cell, from every table row of docs/configuration.md that starts with a variable."""
    rows = {}
    for line in (DOCS / "configuration.md").read_text().splitlines():
        match = re.match(r"\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} is documented twice"
            rows[match.group(1)] = match.group(2).strip()
    return rows


def shown(default) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


# Settings whose empty default stands for a value computed at start-up, described in words.
COMPUTED = {"DATABASE_URL", "JWT_SECRET_KEY", "METRICS_HOST"}
NOT_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR", "GATEWAY_ENV_FILE"}


def test_the_configuration_reference_lists_every_setting_with_its_default():
    rows = configuration_rows()
    settings = {spec.metadata["env"]: spec.default for spec in fields(Settings)}
    assert sorted(set(settings) - set(rows)) == [], "settings missing from docs/configuration.md"
    assert sorted(set(rows) - set(settings) - NOT_SETTINGS) == [], "documented, but not a setting of app/config.py"
    for name, default in settings.items():
        cell = rows[name]
        if default == "" and name not in COMPUTED:
            assert cell.startswith("empty"), f"{name}: documented default {cell!r}, but it is empty"
        elif default != "":
            assert cell.startswith(f"`{shown(default)}`"), f"{name}: documented default {cell!r}, but it is {default!r}"


@pytest.mark.slow  # it runs the commands, each a new process that imports the app
def test_the_readme_operator_commands_run_as_written(tmp_path):
    block = re.search(r"## Operator commands.*?```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    commands = [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert any("disable-user" in c for c in commands) and any("enable-user" in c for c in commands)
    venv_bin = Path(sys.executable).parent
    # As in a fresh shell: no activated venv, nothing on PATH but the system's.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'ops.db'}"}
    password = "correct horse battery\n" * 2  # create-user asks for it twice
    said = []
    for command in commands:
        assert command.startswith(".venv/bin/"), command
        argv = [str(venv_bin / shlex.split(command)[0].removeprefix(".venv/bin/")), *shlex.split(command)[1:]]
        done = subprocess.run(argv, cwd=ROOT, env=env, input=password, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (command, done.stderr)
        said.append(done.stdout)
    assert [line.split(" (")[0] for out in said[1:] for line in out.splitlines()] == [
        "created user ada@example.com", "created organisation 'Acme'", "disabled user ada@example.com",
        "enabled user ada@example.com"]
