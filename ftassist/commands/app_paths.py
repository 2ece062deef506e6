"""Paths between a command and the running app: the app reads and writes only under its data dir (it may be a
public Space), while a person's command names files and folders anywhere. So a command sends the app a copy of a
file from elsewhere, asks it to write under its data dir, and then brings what it wrote to the folder the person
named, with the result's paths pointing there."""

from __future__ import annotations

import errno
import re
import shutil
import sys
import uuid
from pathlib import Path

from ftassist.cli import CLIError

from . import gateway


def data_dir() -> Path:
    from ftassist.usecases.context import Settings

    return Settings.from_environment().data_dir


def for_app(path: str) -> str:
    """The path as the running app can read it: absolute (the app's working folder is not this one), and a
    file outside the data dir copied under its uploads folder first. With no app running: as given."""
    from ftassist.usecases.context import Settings

    candidate = Path(path).expanduser()
    if not candidate.is_file() or not gateway.through_app():
        return path
    resolved = candidate.resolve()
    settings = Settings.from_environment()
    if resolved.is_relative_to(settings.data_dir.resolve()):
        return str(resolved)
    copy = settings.uploads_dir / f"{uuid.uuid4().hex[:8]}-{resolved.name}"
    try:
        shutil.copyfile(resolved, copy)
    except OSError as exc:
        raise CLIError(f"the running app reads only its data dir, and copying {path} there failed: "
                       f"{exc.strerror or exc}") from None
    print(f"ftassist: the running app reads files under its data dir: it reads a copy, {copy}", file=sys.stderr)
    return str(copy)


def out_for_app(out: str | None) -> tuple[str | None, Path | None]:
    """(the folder to ask the app for, the folder to bring its files to afterwards): the app writes only under
    its data dir, so for a folder elsewhere it writes its own and this command brings the files over."""
    if not out or not gateway.through_app():
        return out, None
    target = Path(out).expanduser().resolve()
    if target.is_relative_to(data_dir().resolve()):
        return str(target), None
    return None, target


def brought(result: dict, source: Path, target: Path, what: str, move: bool = False) -> dict:
    """The files of `source` (the folder the app wrote) copied, or moved (`move`: model weights are too large to
    keep twice), into `target`; and every path under `source` in the result (in its texts and commands too)
    pointing at `target` instead. `what` names the files in an error."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        if move:
            _move_into(source, target)
        else:
            shutil.copytree(source, target, dirs_exist_ok=True)
    except OSError as exc:
        raise CLIError(f"{what} in {source}, but {'moving' if move else 'copying'} them to {target} failed: "
                       f"{exc.strerror or exc}") from None
    # the folder's own path, as a whole path: followed by a separator, the end, or what ends a path in a sentence
    pattern = re.compile(re.escape(str(source)) + r"(?=$|[/\s:;,)'\"`])")

    def pointed(value):
        if isinstance(value, str):
            return pattern.sub(lambda _: str(target), value)
        if isinstance(value, dict):
            return {key: pointed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [pointed(item) for item in value]
        return value

    return pointed(result)


def _move_into(source: Path, target: Path) -> None:
    """Every file of `source` moved to the same place under `target` (renamed where both are on one disk), a file
    of the same name replaced; folders already in `target` are merged into, never removed; `source` is left out
    of the data dir. Raises OSError."""
    for item in source.iterdir():
        destination = target / item.name
        if item.is_dir() and not item.is_symlink() and destination.is_dir():
            _move_into(item, destination)
            continue
        if destination.is_dir() and not destination.is_symlink():
            raise IsADirectoryError(errno.EISDIR, f"{destination} is a folder, where the export has the file", "")
        if destination.is_symlink() or destination.exists():
            destination.unlink()
        shutil.move(str(item), str(destination))
    source.rmdir()
