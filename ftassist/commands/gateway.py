"""How a command reaches a use case: through the running app when there is one, else in this process.

DuckDB allows one writing process: while the app runs it owns the database, so the command asks
it over its socket (`ftassist.app_socket`) and what the command does shows in the app at once.
With no app running, the command opens the store itself. Either way the result comes back as
JSON values (dataclasses as dicts), so a command prints the same thing in both cases.
"""

from __future__ import annotations

from typing import Any

from ftassist import app_socket
from ftassist.cli import CLIError
from ftassist.usecases import registry
from ftassist.usecases.context import Context, Settings, UseCaseError

_local_context: Context | None = None


def through_app() -> bool:
    """True when a running app serves this data dir (commands then go through it)."""
    return app_socket.connect() is not None


def local_context() -> Context:
    """This process's context (only when no app runs: see `call`)."""
    global _local_context
    settings = Settings.from_environment()
    if _local_context is None or _local_context.settings != settings:
        _local_context = Context.open(settings)
    return _local_context


def call(name: str, /, **arguments: Any) -> Any:
    """Run use case `name`; its refusals become one clear CLI line (exit 2)."""
    from ftassist.store import StoreLockedError

    try:
        client = app_socket.connect()
        if client is not None:
            return client.call(name, arguments)
        return registry.to_jsonable(registry.call(local_context(), name, arguments))
    except UseCaseError as exc:
        raise CLIError(str(exc)) from None
    except app_socket.AppUnavailable as exc:
        raise CLIError(str(exc)) from None
    except StoreLockedError as exc:
        raise CLIError(f"{exc} (an ftassist command is running there: wait for it, or start the app, "
                       "which lets several commands share the database)") from None
