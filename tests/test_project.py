"""The README's quickstart is the contract with new users: keep it true."""
import re

from tests.support.servers import ROOT


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)


def test_readme_starts_with_exactly_two_commands_and_ci_runs_the_second():
    commands = quickstart_commands()
    assert len(commands) == 2
    run_gateway, run_tests = commands
    assert "gunicorn -c gunicorn.conf.py wsgi:app" in run_gateway
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert f"TEST_COMMAND='{run_tests}'" in ci_script
