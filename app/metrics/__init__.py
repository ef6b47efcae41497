"""Request metrics and the /metrics endpoint."""
from flask import Flask


def init_app(app: Flask) -> None:
    pass
