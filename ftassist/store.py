"""The DuckDB store: one file under the data dir, one owning connection per process.

DuckDB allows a single writing process, so the app process owns the file and every
other process (the training worker above all) reports through files that the app
ingests. Inside the process, Gradio handlers run on many threads: each call takes a
cursor from the owning connection under a lock, so writes are serialised and every
statement commits on its own unless it runs inside `transaction()`.

A full or read-only disk is said as such (`disk_faults.DiskFaultError`, an OSError naming the cause and
the file, logged once here), never as "the database is in use" nor as DuckDB's bare error: what was
committed before stays committed, and the statement that met the fault is not.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import config
from .disk_faults import DiskFaultError, find as find_disk_fault
from .migrations import all_migrations

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

# Tables a process that does not hold the database may add rows to through the journal (below).
JOURNAL_TABLES = ("datasets",)


class StoreLockedError(RuntimeError):
    """Another process already holds the database file."""


class Store:
    def __init__(self, path: str | Path | None = None):
        import duckdb  # here, not at import: a command that only journals a row never loads DuckDB

        self.path = Path(path) if path is not None else config.db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _raise_disk_fault(exc, f"the data dir {self.path.parent} cannot be made")
            raise
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:  # a full or read-only disk, or the file lock held by another process
            _raise_disk_fault(exc, f"the database {self.path} cannot be opened")
            raise StoreLockedError(
                f"The database {self.path} is in use by another ftassist process. "
                "Stop that process, or set FTASSIST_HOME to another folder."
            ) from exc
        self._lock = threading.RLock()
        with self._disk_faults():
            self.migrate()
        self.ingest_journal()

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

    # -- the journal ------------------------------------------------------------------------------
    def ingest_journal(self) -> int:
        """Insert the rows other processes journaled (see `journal_row`); returns how many were new.

        Each journal file is first renamed to a name only this process uses, so a writer appending at the
        same moment starts a new file; rows carry their primary key, so a file ingested twice (a crash
        between the insert and the unlink) adds nothing twice."""
        folder = journal_dir(self.path.parent)
        if not folder.is_dir():
            return 0
        added = 0
        for table in JOURNAL_TABLES:
            for pending in sorted(folder.glob(f"{table}.jsonl")) + sorted(folder.glob(f"{table}.*.ingesting")):
                taking = pending if pending.suffix == ".ingesting" else pending.with_name(
                    f"{table}.{os.getpid()}.{threading.get_ident()}.ingesting")
                try:
                    if taking != pending:
                        os.replace(pending, taking)
                    lines = taking.read_text(encoding="utf-8").splitlines()
                except OSError:
                    continue
                rows = []
                for line in lines:
                    try:
                        rows.append(json.loads(line))
                    except ValueError:  # a line cut by a crash mid-write: the rest still counts
                        continue
                with self.transaction() as con:
                    for row in rows:
                        names = list(row)
                        before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                        con.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) "
                                    f"VALUES ({', '.join('?' for _ in names)})", [row[n] for n in names])
                        added += con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before
                taking.unlink(missing_ok=True)
        return added

    def schema_versions(self) -> dict[str, int]:
        return dict(self.query_rows("SELECT component, version FROM schema_versions"))

    # -- statements ---------------------------------------------------------------
    @contextmanager
    def _disk_faults(self) -> Iterator[None]:
        """DuckDB's error for a full or read-only disk (it names the fault in the system's words) raised as
        DiskFaultError, logged; every other error unchanged."""
        try:
            yield
        except DiskFaultError:
            raise
        except Exception as exc:
            if type(exc).__module__.lstrip("_").split(".")[0] != "duckdb":
                raise
            _raise_disk_fault(exc, f"the database {self.path} could not be written")
            raise

    def execute(self, sql: str, params: list | tuple | None = None) -> None:
        with self._lock, self._disk_faults():
            self._con.execute(sql, params or [])

    def executemany(self, sql: str, rows: list) -> None:
        if not rows:
            return
        with self._lock, self._disk_faults():
            self._con.executemany(sql, rows)

    def query_rows(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        with self._lock, self._disk_faults():
            return self._con.execute(sql, params or []).fetchall()

    def query(self, sql: str, params: list | tuple | None = None) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        with self._lock, self._disk_faults():
            cur = self._con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def query_df(self, sql: str, params: list | tuple | None = None):
        with self._lock, self._disk_faults():
            return self._con.execute(sql, params or []).df()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Several statements that commit together or not at all."""
        with self._lock, self._disk_faults():
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


def _raise_disk_fault(exc: BaseException, doing: str) -> None:
    """Raise DiskFaultError (logged, chained to `exc`) when `exc` is a disk fault; else return."""
    fault = find_disk_fault(exc)
    if fault is None:
        return
    error = DiskFaultError(fault, doing)
    log.error("%s", error)
    raise error from exc


def journal_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "journal"


def journal_row(data_dir: str | Path, table: str, row: dict[str, Any]) -> None:
    """Append a row for `table` to the data dir's journal, for the process that holds (or next opens) the
    database to insert. Why: a short command that only adds one row (`ftassist check` recording the check)
    must not load DuckDB for it; like a worker's events file, the journal is append-only JSON lines."""
    if table not in JOURNAL_TABLES:
        raise ValueError(f"{table} is not a journaled table")
    folder = journal_dir(data_dir)
    line = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{table}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)  # one whole line at a time, whatever its length
            before = os.fstat(fd).st_size
            try:
                if os.write(fd, line) != len(line):  # the disk filled mid-line
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / f"{table}.jsonl"))
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, before)  # no cut line for the next row to be glued to
                raise
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(folder / f"{table}.jsonl")
        _raise_disk_fault(exc, f"the {table} row could not be journaled")
        raise


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
