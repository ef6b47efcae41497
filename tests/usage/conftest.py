"""Usage fixtures: a catalogue with one priced and one unpriced model, both served by the fake provider."""
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import OrgUsageMonth, UsageRecord

PRICED, FREE = "priced-mini", "free-llama"
INPUT_PRICE, OUTPUT_PRICE = Decimal("0.15"), Decimal("0.6")  # USD per million tokens


def models_file(directory, fake_llm) -> str:
    path = directory / "models.json"
    path.write_text(json.dumps({"default_model": FREE, "models": {
        FREE: {"provider": "ollama", "base_url": fake_llm.ollama_url, "upstream_model": "llama3.1"},
        PRICED: {"provider": "openai", "base_url": fake_llm.openai_url, "upstream_model": "gpt-test",
                 "input_price": str(INPUT_PRICE), "output_price": str(OUTPUT_PRICE)},
    }}))
    return str(path)


def cost(prompt_tokens: int, completion_tokens: int) -> Decimal:
    return (prompt_tokens * INPUT_PRICE + completion_tokens * OUTPUT_PRICE) / 1_000_000


@pytest.fixture
def app_config(app_config, fake_llm, tmp_path):
    return {**app_config, "MODELS_FILE": models_file(tmp_path, fake_llm), "SSE_HEARTBEAT_SECONDS": "2",
            "PROVIDER_READ_TIMEOUT": "0.5"}


def usage_rows(session, **where) -> list[UsageRecord]:
    session.expire_all()
    query = select(UsageRecord).filter_by(**where).order_by(UsageRecord.created_at)
    return list(session.scalars(query))


def month_totals(session, org_id: str) -> dict[str, tuple[int, Decimal]]:
    session.expire_all()
    return {row.month: (row.tokens, row.cost_usd)
            for row in session.scalars(select(OrgUsageMonth).where(OrgUsageMonth.org_id == org_id))}


def org_conversation(client, user, org) -> str:
    response = client.post("/conversations", json={"title": "t", "orgId": org["id"]}, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def org_key(client, user, org) -> dict:
    response = client.post("/api-keys", json={"name": "ci", "orgId": org["id"]}, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['key']}"}


def usd(amount: Decimal) -> str:
    """As the API writes exact USD: a plain decimal string without trailing zeros."""
    return format(amount.normalize(), "f")
