"""Apps a test makes itself, beside the `app` fixture."""
from flask import Flask


def close_app(app: Flask) -> None:
    """Give back what an app under test holds open: its connections to model servers and its database pool."""
    app.extensions["llm"].providers.close()
    app.extensions["db_engine"].dispose()
