"""Accounts from the command line: `flask --app wsgi create-user EMAIL` (for gateways whose sign-up is
closed), `disable-user EMAIL` and `enable-user EMAIL`."""
import sys

import click
from flask.cli import with_appcontext

from ..auth import service as accounts
from ..db import session_factory
from ..errors import ApiError
from ..models import Org, OrgMember, OrgRole


@click.command("create-user")
@click.argument("email")
@click.option("--name", default=None, help="Display name.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="Asked for when not given; read from standard input with --password -.")
@click.option("--owner-of", "org_name", default=None, help="Also create this organisation with the user as OWNER.")
@with_appcontext
def create_user(email: str, name: str | None, password: str, org_name: str | None) -> None:
    """Create an account (even with REGISTRATION_OPEN=false), optionally the OWNER of a new organisation."""
    if password == "-":
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise click.UsageError("the password must be at least 8 characters long")
    with session_factory()() as session:
        try:
            user = accounts.register(session=session, email=email, password=password, name=name)
        except ApiError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"created user {user.email} ({user.id})")
        if org_name:
            org = Org(name=org_name)
            org.members.append(OrgMember(user_id=user.id, role=OrgRole.OWNER))
            session.add(org)
            session.commit()
            click.echo(f"created organisation {org.name!r} ({org.id}) with {user.email} as OWNER")


def _set_disabled(email: str, disabled: bool) -> None:
    with session_factory()() as session:
        try:
            user = accounts.set_disabled(session=session, email=email, disabled=disabled)
        except ApiError as exc:
            raise click.ClickException(f"{exc.message}: {email}") from None
    click.echo(f"{'disabled' if disabled else 'enabled'} user {user.email} ({user.id})")


@click.command("disable-user")
@click.argument("email")
@with_appcontext
def disable_user(email: str) -> None:
    """Disable an account: its tokens stop working at once on every worker, and it can no longer log in."""
    _set_disabled(email, True)


@click.command("enable-user")
@click.argument("email")
@with_appcontext
def enable_user(email: str) -> None:
    """Enable a disabled account again; it logs in afresh (its earlier tokens stay revoked)."""
    _set_disabled(email, False)

