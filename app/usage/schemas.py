from datetime import timezone
from decimal import ROUND_HALF_UP, Decimal

from marshmallow import ValidationError, fields, post_load, validate

from ..http.schemas import CamelSchema
from ..models import USD_PLACES

GROUP_BY = ("model", "user", "day")
# SQLite keeps USD as a signed 64-bit count of 1e-10 USD (models.Usd): at most about 9.2e8 USD. A round
# 1e8 leaves room for the month's total to pass a budget; found by Schemathesis (1e9 overflowed, a 500).
MAX_COST_USD = 10**8


class UsdString(fields.Field):
    """Exact USD as a decimal string ("0.000045"), never a float; null when nothing had a price."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return format(Decimal(value).normalize(), "f")


def _usd_amount(value: Decimal) -> None:
    # A function, not validate.Range: apispec would render a Decimal bound as a string, which is no JSON Schema;
    # the bounds are written into the document as numbers by the field's metadata.
    if not 0 <= value <= MAX_COST_USD:
        raise ValidationError(f"Must be between 0 and {MAX_COST_USD}.")


class BudgetPutSchema(CamelSchema):
    monthly_tokens = fields.Integer(strict=True, allow_none=True, load_default=None,
                                    validate=validate.Range(min=1, max=10**15),
                                    metadata={"description": "Tokens (prompt + completion) a month; null: no limit"})
    # Rounded to the 10 places usage is stored with (a JSON number can be any float: 3e-301 is a valid one).
    monthly_cost_usd = fields.Decimal(places=USD_PLACES, rounding=ROUND_HALF_UP, allow_none=True, allow_nan=False,
                                      load_default=None, validate=_usd_amount,
                                      metadata={"description": "USD a month, a decimal string or number from 0 to "
                                                               "100000000, rounded to 10 decimal places; null: no limit",
                                                "minimum": 0, "maximum": MAX_COST_USD})


class BudgetSchema(CamelSchema):
    monthly_tokens = fields.Integer(allow_none=True)
    monthly_cost_usd = UsdString(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    month = fields.String(metadata={"description": "The current UTC month, YYYY-MM"})
    tokens_used = fields.Integer()
    cost_used_usd = UsdString()
    token_utilisation = fields.Float(allow_none=True, metadata={"description": "tokensUsed / monthlyTokens"})
    cost_utilisation = fields.Float(allow_none=True, metadata={"description": "costUsedUsd / monthlyCostUsd"})
    resets_at = fields.DateTime(metadata={"description": "The first instant of the next UTC month"})


class UsageArgsSchema(CamelSchema):
    start = fields.AwareDateTime(data_key="from", load_default=None,
                                 metadata={"description": "ISO-8601 with a zone, inclusive; default: the start of the UTC month of `to` "
                                                          "(or of this month); must be before `to`"})
    end = fields.AwareDateTime(data_key="to", load_default=None,
                               metadata={"description": "Exclusive; default: the start of the UTC month after `from` "
                                                        "(or after this month)"})
    group_by = fields.String(load_default=None, validate=validate.OneOf(GROUP_BY))

    @post_load
    def _in_utc(self, data, **kwargs):
        for name in ("start", "end"):
            if data[name] is not None:
                data[name] = data[name].astimezone(timezone.utc)
        return data


class UsageTotalsSchema(CamelSchema):
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()
    cost_usd = UsdString(allow_none=True, metadata={"description": "Exact USD; null when nothing had a price"})
    completions = fields.Integer()


class UsageGroupSchema(UsageTotalsSchema):
    key = fields.String(metadata={"description": "The model name, user id, or UTC day (YYYY-MM-DD)"})


class UsageReportSchema(CamelSchema):
    start = fields.DateTime(data_key="from")
    end = fields.DateTime(data_key="to")
    totals = fields.Nested(UsageTotalsSchema)
    groups = fields.List(fields.Nested(UsageGroupSchema), metadata={"description": "Only with groupBy"})
