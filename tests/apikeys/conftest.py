"""API key fixtures: an app whose models are served by the fake provider, so keys can chat."""
from tests.support.fake_catalogue import app_config  # noqa: F401 - a fixture
