"""Where ftassist keeps its files, and the few settings read from the environment.

The data dir holds the DuckDB file, runs, uploads and session state. It is chosen so
that a Hugging Face Space with persistent storage keeps everything across restarts
(`/data`), while a local checkout never writes outside its own folder by default.
"""

from __future__ import annotations

import os
from pathlib import Path


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def data_dir(create: bool = True) -> Path:
    """`$FTASSIST_HOME`, else `/data` when it exists and is writable (a Space), else `./ftassist_data`."""
    env = os.environ.get("FTASSIST_HOME")
    if env:
        path = Path(env).expanduser()
    elif _writable_dir(Path("/data")):
        path = Path("/data") / "ftassist"
    else:
        path = Path.cwd() / "ftassist_data"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path.resolve() if path.exists() else path


def db_path() -> Path:
    return data_dir() / "ftassist.duckdb"


def runs_dir() -> Path:
    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def uploads_dir() -> Path:
    path = data_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sessions_dir() -> Path:
    path = data_dir() / "sessions"
    path.mkdir(parents=True, exist_ok=True)
    return path


def on_space() -> bool:
    """True on a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))
