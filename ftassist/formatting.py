"""Numbers as people read them, written once so the UI, the CLI and the assistant agree."""

from __future__ import annotations


def format_money(amount: float | None, unknown: str = "") -> str:
    """Dollars with cents ("$1,234.50"); sums under a cent as "< $0.01" (never "$0.00" for a real cost)."""
    if amount is None:
        return unknown
    amount = float(amount)
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    return "< $0.01"


def format_duration(seconds: float | None) -> str:
    """An ETA or elapsed time as people read it ("1h05m", "4m09s"); "?" when unknown."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def plural(count: int, word: str) -> str:
    """"1 example", "1,204 examples"."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")
