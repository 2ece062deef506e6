"""The application layer: one function per use case, over the stations, under every front end.

A use case takes a `Context` (the store and the settings) and plain arguments, and returns a
typed result (a dataclass). It raises `UseCaseError` with a message meant for a person when the
request cannot be done. The UI (`ftassist.ui`), the CLI (`ftassist.commands`, directly or through
the running app's socket) and the assistant (`ftassist.assistant`) only adapt these functions;
none of them holds SQL or a domain rule. See docs/ARCHITECTURE.md.
"""

from .context import Context, NotFound, Settings, UseCaseError
from .session import Dataset, Decision, Session, Split

__all__ = ["Context", "Dataset", "Decision", "NotFound", "Session", "Settings", "Split", "UseCaseError"]
