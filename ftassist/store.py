"""The DuckDB store: one file under the data dir, one owning connection per process.

DuckDB allows a single writing process, so the app process owns the file and every
other process (the training worker above all) reports through files that the app
ingests. Inside the process, Gradio handlers run on many threads: each call takes a
cursor from the owning connection under a lock, so writes are serialised and every
statement commits on its own unless it runs inside `transaction()`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from . import config
from .migrations import all_migrations


class StoreLockedError(RuntimeError):
    """Another process already holds the database file."""


class Store:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else config.db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:  # the file lock is held by another process
            raise StoreLockedError(
                f"The database {self.path} is in use by another ftassist process. "
                "Stop that process, or set FTASSIST_HOME to another folder."
            ) from exc
        self._lock = threading.RLock()
        self.migrate()

    # -- schema -------------------------------------------------------------------
    def migrate(self) -> dict[str, int]:
        """Apply the missing migrations of every component; returns the versions now in force."""
        with self._lock:
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                " component VARCHAR PRIMARY KEY, version INTEGER NOT NULL,"
                " applied_at TIMESTAMP DEFAULT current_timestamp)"
            )
            versions = dict(self._con.execute("SELECT component, version FROM schema_versions").fetchall())
            for component, scripts in all_migrations().items():
                current = versions.get(component, 0)
                for number, script in enumerate(scripts[current:], start=current + 1):
                    self._con.execute("BEGIN TRANSACTION")
                    try:
                        self._con.execute(script)
                        self._con.execute(
                            "INSERT OR REPLACE INTO schema_versions (component, version) VALUES (?, ?)",
                            [component, number],
                        )
                        self._con.execute("COMMIT")
                    except Exception:
                        self._con.execute("ROLLBACK")
                        raise
                    versions[component] = number
            return versions

    def schema_versions(self) -> dict[str, int]:
        return dict(self.query_rows("SELECT component, version FROM schema_versions"))

    # -- statements ---------------------------------------------------------------
    def execute(self, sql: str, params: list | tuple | None = None) -> None:
        with self._lock:
            self._con.execute(sql, params or [])

    def executemany(self, sql: str, rows: list) -> None:
        if not rows:
            return
        with self._lock:
            self._con.executemany(sql, rows)

    def query_rows(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params or []).fetchall()

    def query(self, sql: str, params: list | tuple | None = None) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        with self._lock:
            cur = self._con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def query_df(self, sql: str, params: list | tuple | None = None):
        with self._lock:
            return self._con.execute(sql, params or []).df()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Several statements that commit together or not at all."""
        with self._lock:
            self._con.execute("BEGIN TRANSACTION")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            else:
                self._con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._con.close()


_store: Store | None = None
_store_lock = threading.Lock()


def get_store(path: str | Path | None = None) -> Store:
    """The process's one store for `path` (default: the data dir's database), opened on first use,
    so importing ftassist opens nothing. Asking for another path closes the previous one."""
    global _store
    wanted = Path(path) if path is not None else config.db_path()
    with _store_lock:
        if _store is None or Path(_store.path) != wanted:
            if _store is not None:
                _store.close()
            _store = Store(wanted)
        return _store


def reset_store() -> None:
    """Close the process's store (tests switch FTASSIST_HOME between cases)."""
    global _store
    with _store_lock:
        if _store is not None:
            _store.close()
        _store = None
