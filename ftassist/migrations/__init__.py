"""Schema migrations, one module per station so that stations evolve their tables apart.

Each module exports `MIGRATIONS`: a list of SQL scripts. Version N of a component is
`MIGRATIONS[N-1]`; a script, once released, is never edited (append a new one instead).
`store.Store` applies the missing ones in order, each in its own transaction.
"""

from __future__ import annotations

from importlib import import_module

COMPONENTS = ("core", "jobs", "arena", "evaluation")


def all_migrations() -> dict[str, list[str]]:
    return {name: list(import_module(f"{__name__}.{name}").MIGRATIONS) for name in COMPONENTS}
