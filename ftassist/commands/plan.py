"""`ftassist` subcommands of the plan station (filled in by its issue)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this station's subcommands to the `ftassist` parser."""
