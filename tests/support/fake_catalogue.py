"""Fixtures for a package whose tests chat: the app's models are served by the fake provider.

A package's conftest imports them (`from tests.support.fake_catalogue import app_config`).
"""
import pytest

from tests.usage.conftest import models_file


@pytest.fixture
def app_config(app_config, fake_llm, tmp_path):
    return {**app_config, "MODELS_FILE": models_file(tmp_path, fake_llm)}
