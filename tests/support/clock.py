"""The prediction log partitions by the UTC day a request arrives. A test that names today's
folder and then writes (or wrote) into the day of its clock fails across a UTC midnight."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta


def after_a_coming_midnight(within: float = 30) -> date:
    """Today's UTC date, one that lasts at least ``within`` more seconds: when a UTC midnight is
    closer than that, wait it out first. ``within`` is how long the caller relies on the date."""
    now = datetime.now(UTC)
    left = (datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now).total_seconds()
    if left < within:
        time.sleep(left + 0.5)
    return datetime.now(UTC).date()
