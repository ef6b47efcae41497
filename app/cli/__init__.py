"""Operator commands, run as `flask --app wsgi <command>` beside a deployed gateway."""
from flask import Flask

from .users import create_user, disable_user, enable_user


def init_app(app: Flask) -> None:
    for command in (create_user, disable_user, enable_user):
        app.cli.add_command(command)
