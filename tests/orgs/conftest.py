"""Org fixtures: an app whose models are served by the fake provider, so members can chat."""
import pytest

from tests.usage.conftest import models_file


@pytest.fixture
def app_config(app_config, fake_llm, tmp_path):
    return {**app_config, "MODELS_FILE": models_file(tmp_path, fake_llm)}


@pytest.fixture
def app(app):
    yield app
    app.extensions["llm"].providers.close()
