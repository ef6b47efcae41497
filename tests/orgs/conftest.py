"""Org fixtures: an app whose models are served by the fake provider, so members can chat."""
from tests.support.fake_catalogue import app_config  # noqa: F401 - a fixture
