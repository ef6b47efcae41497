"""The page's cost of a message (exact integer arithmetic in the browser) equals the gateway's, digit for
digit, including prices finer than the stored precision and halfway cases."""
import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from app.llm import Timeouts, Usage
from app.llm.pricing import cost_of
from app.llm.types import ModelSpec
from tests.monitoring.conftest import node_bin  # noqa: F401  (node, or a skip; a failure under CI)

FORMAT = Path(__file__).resolve().parents[2] / "app" / "web" / "static" / "format.js"
CASES = [  # (input price, output price, prompt tokens, completion tokens)
    ("0.15", "0.60", 17, 8), ("0.15", "0.60", 0, 0), ("2.5", "10", 123456, 7890), ("0", "0.6", 5, 5),
    ("0.000000015", "2", 3, 1), ("0.00005", "0.00005", 1, 0), ("0.00015", "0", 1, 0), ("0.00025", None, 1, 0),
    (None, "3", 10, 1_000_000_000), ("99999.9999999999", "1", 999_999, 3),
]


def gateway_cost(input_price, output_price, prompt, completion) -> str | None:
    spec = ModelSpec("m", "openai", "http://x", "m", Timeouts(1, 1), input_price=input_price and Decimal(input_price),
                     output_price=output_price and Decimal(output_price))
    cost = cost_of(spec, Usage(prompt, completion))
    return None if cost is None else format(cost.normalize(), "f")


def page_costs(node_bin, expression: str):
    """`expression` evaluated by node with format.js's messageCost imported, as JSON."""
    script = (f"import {{ messageCost }} from {json.dumps(FORMAT.as_uri())};\n"
              f"console.log(JSON.stringify({expression}));")
    result = subprocess.run([node_bin, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_page_computes_costs_exactly_as_the_gateway(node_bin):
    computed = page_costs(node_bin, f"{json.dumps(CASES)}.map(([input, output, promptTokens, completionTokens]) =>"
                                    " messageCost({input, output}, {promptTokens, completionTokens}))")
    assert computed == [gateway_cost(*case) for case in CASES]
    unpriced = page_costs(node_bin, "[messageCost(undefined, {promptTokens: 1, completionTokens: 1}),"
                                    " messageCost({input: null, output: null}, {promptTokens: 1, completionTokens: 1})]")
    assert unpriced == [None, None]


@pytest.mark.parametrize("price", ["0.15", "2.5", "0.000000015"])
def test_python_and_the_page_agree_on_the_price_text(price):
    assert format(Decimal(price), "f") == price  # what app/web/routes.py hands the page is the file's digits
