"""Calendar months in UTC: what a budget resets on and what a usage period defaults to."""
from __future__ import annotations

from datetime import datetime, timezone


def month_start(moment: datetime) -> datetime:
    """The first instant of `moment`'s UTC month."""
    moment = moment.astimezone(timezone.utc)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: datetime) -> datetime:
    """The first instant of the UTC month after `moment`'s: when a monthly budget resets."""
    start = month_start(moment)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)

