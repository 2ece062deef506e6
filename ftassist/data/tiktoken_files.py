"""tiktoken's rank files, offline: copied from the `bpe-openai` package into tiktoken's cache.

Why: tiktoken downloads each encoding's rank file on first use, and this machine (and many
users') has no network. The `bpe-openai` package ships the same rank files gzipped, and
their decompressed sha256 equal tiktoken's own expected hashes, so they are copied into
tiktoken's cache under the names tiktoken looks for (sha1 of the blob URL), after checking
the hash. tiktoken then loads them through its public API, hash check included.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Sequence

DEFAULT_ENCODING = "o200k_base"

# name -> (tiktoken's blob URL, tiktoken's expected sha256 of the decompressed file)
ENCODING_FILES: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
ENCODINGS = tuple(ENCODING_FILES)

_verified: set[tuple[str, str]] = set()  # (cache dir, encoding) already checked in this process


def default_cache_dir() -> Path:
    """`$TIKTOKEN_CACHE_DIR` when set (non-empty), else `$XDG_CACHE_HOME|~/.cache`/ftassist/tiktoken."""
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ftassist" / "tiktoken"


def cache_file_name(encoding: str) -> str:
    """The file name tiktoken's `read_file_cached` uses: sha1 of the blob URL."""
    url, _ = ENCODING_FILES[encoding]
    return hashlib.sha1(url.encode()).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as rank_file:
        for chunk in iter(lambda: rank_file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _shipped_rank_file(encoding: str) -> bytes:
    """The decompressed rank file shipped by `bpe-openai` (no network)."""
    try:
        import importlib.util

        # Locate the package without importing it: its __init__ eagerly builds tokenizers.
        spec = importlib.util.find_spec("bpe_openai")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("bpe_openai")
        package_dir = Path(list(spec.submodule_search_locations)[0])
        blob = (package_dir / "data" / f"{encoding}.tiktoken.gz").read_bytes()
    except (ImportError, FileNotFoundError, OSError, ValueError) as exc:
        raise RuntimeError(
            f"Cannot find the offline copy of {encoding} (package bpe-openai). "
            "Install it with `pip install bpe-openai`, or allow tiktoken to download once."
        ) from exc
    return gzip.decompress(blob)


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        return os.access(path, os.W_OK | os.X_OK)
    except OSError:
        return False


def ensure_offline_encodings(cache_dir: str | os.PathLike | None = None, names: Iterable[str] | None = None) -> Path:
    """Make `tiktoken.get_encoding("o200k_base"/"cl100k_base")` work with no network.

    Writes each rank file into the tiktoken cache dir under tiktoken's own cache name, only
    after checking its sha256 equals tiktoken's expected hash; a cached file with the wrong
    hash is replaced. Sets `TIKTOKEN_CACHE_DIR` when it was unset (or empty, which would
    disable tiktoken's cache). Idempotent: after the first check in a process it only stats.
    `names`: only these encodings (default: all). Returns the cache dir.
    """
    names = tuple(ENCODING_FILES) if names is None else tuple(names)
    if cache_dir is not None:
        return _populate(Path(cache_dir).expanduser(), names)
    target = default_cache_dir()
    if not _writable(target) and not _complete(target, names):
        # tiktoken would need to download into an unwritable dir: use a temp dir instead
        target = Path(tempfile.gettempdir()) / "ftassist-tiktoken"
        os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    return _populate(target, names)


def _complete(target: Path, names: Sequence[str]) -> bool:
    """All rank files present with the right hash (read-only caches are fine then)."""
    return all(
        (target / cache_file_name(name)).is_file()
        and _sha256_file(target / cache_file_name(name)) == ENCODING_FILES[name][1]
        for name in names
    )


def _populate(target: Path, names: Sequence[str]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for encoding in names:
        expected = ENCODING_FILES[encoding][1]
        path = target / cache_file_name(encoding)
        key = (str(target), encoding)
        if key in _verified and path.exists():
            continue
        if path.exists() and _sha256_file(path) == expected:
            _verified.add(key)
            continue
        data = _shipped_rank_file(encoding)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise RuntimeError(
                f"The offline copy of {encoding} has sha256 {actual}, expected {expected}; "
                "refusing to use it. Reinstall bpe-openai."
            )
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, path)  # atomic: a concurrent reader sees the old file or the new one
        _verified.add(key)
    return target
