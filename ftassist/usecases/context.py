"""What every use case is given: the store and the settings (as datasette passes its `Datasette`).

Why explicit: a use case that fetched a global store could not be called for another data dir
(tests), nor from the app's socket for the CLI, without hidden coupling. Front ends make one
`Context` (the app at start, the CLI per command) and pass it down.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from hashlib import sha256
from pathlib import Path

from ftassist import config


class UseCaseError(ValueError):
    """The request cannot be done as asked; the message says why and what to do (shown as is)."""


class NotFound(UseCaseError):
    """A named thing (run, model, dataset) does not exist."""


@dataclass(frozen=True)
class Settings:
    """Where things live. Everything is under `data_dir`, except the app's socket (see `socket_path`)."""

    data_dir: Path

    @classmethod
    def from_environment(cls) -> "Settings":
        return cls(data_dir=config.data_dir())

    def _sub(self, name: str) -> Path:
        path = self.data_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ftassist.duckdb"

    @property
    def runs_dir(self) -> Path:
        return self._sub("runs")

    @property
    def uploads_dir(self) -> Path:
        return self._sub("uploads")

    @property
    def clean_dir(self) -> Path:
        return self._sub("clean")

    @property
    def prepared_dir(self) -> Path:
        return self._sub("prepared")

    @property
    def exports_dir(self) -> Path:
        return self._sub("exports")

    @property
    def socket_path(self) -> Path:
        """The running app's socket for the CLI. Kept in a private folder of the temp dir, named by the
        data dir's hash: a Unix socket path must stay under 108 bytes, which a deep data dir would not."""
        digest = sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / f"ftassist-{os.getuid()}"
        return folder / f"{digest}.sock"


@dataclass
class Context:
    """The store and the settings of one data dir. The store opens on first use, so a context for
    a command that never touches the database (a check without recording) opens nothing."""

    settings: Settings = field(default_factory=Settings.from_environment)
    _store: object | None = None
    # False in the app: a path that reaches a use case from the page, the assistant or the socket is read
    # only under the data dir, Gradio's upload folder or the shipped sample (`usecases/data.py: readable`);
    # a person's own process (the CLI with no app running) may read any file they name.
    reads_any_file: bool = True

    @classmethod
    def open(cls, settings: Settings | None = None, *, reads_any_file: bool = True) -> "Context":
        return cls(settings=settings or Settings.from_environment(), reads_any_file=reads_any_file)

    @property
    def store_is_open(self) -> bool:
        """Whether this context already opened its store (a command that has not may journal instead)."""
        return self._store is not None or "store" in self.__dict__

    @cached_property
    def store(self):
        """The process's store for this data dir (DuckDB allows one writing process: see store.py)."""
        if self._store is not None:
            return self._store
        from ftassist.store import get_store

        return get_store(self.settings.db_path)
