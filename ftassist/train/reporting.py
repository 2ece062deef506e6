"""Where a local run also reports its metrics: TensorBoard or Trackio, through SFTConfig's `report_to`.

The events file stays the run's own record (the Train tab reads it); these are extra views for people who
use them. An integration is used only when its package is installed here, since transformers raises at
start-up for a missing one; what was asked for but is missing is returned so the worker can say so.
"""

from __future__ import annotations

import importlib.util

INTEGRATIONS = {"tensorboard": "tensorboard", "trackio": "trackio"}  # report_to name -> the package it needs


def report_to(requested: list[str] | str | None) -> tuple[list[str] | str, list[str]]:
    """(the value for SFTConfig's report_to: the installed integrations asked for, or "none"; the ones asked
    for whose package is missing). An unknown name raises ValueError naming the known ones."""
    names = [requested] if isinstance(requested, str) else list(requested or [])
    names = [n.strip().lower() for n in names if n and n.strip() and n.strip().lower() != "none"]
    unknown = [n for n in names if n not in INTEGRATIONS]
    if unknown:
        raise ValueError(f"Unknown report_to {', '.join(unknown)}: use {' or '.join(INTEGRATIONS)}.")
    installed = [n for n in names if importlib.util.find_spec(INTEGRATIONS[n]) is not None]
    missing = [n for n in names if n not in installed]
    return (installed or "none"), missing
