"""What a completion cost, in exact decimal USD, from its model's prices."""
from __future__ import annotations

from decimal import Decimal

from ..models import USD_QUANTUM
from .types import ModelSpec, Usage

PER_TOKENS = Decimal(1_000_000)  # prices are USD per million tokens


def cost_of(model: ModelSpec, usage: Usage | None) -> Decimal | None:
    """None when the model has no price (never a made-up one) or nothing was counted.

    A model priced on one side only (say, output) costs that side alone.
    """
    if usage is None or (model.input_price is None and model.output_price is None):
        return None
    cost = (usage.prompt_tokens * (model.input_price or 0) + usage.completion_tokens * (model.output_price or 0))
    return (cost / PER_TOKENS).quantize(USD_QUANTUM)  # the precision the usage rows store and sum
