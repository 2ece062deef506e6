"""Disk faults in words: a full, read-only or size-capped disk named as the cause, with the place it hit.

Why one module: the store (DuckDB's file and the journal), the job manager (run folders, a worker
that died) and the page (every handler) meet the same faults, and each must tell the person the
same thing: what happened to the disk, where, and what to do, instead of "Error" or a traceback.
A fault is recognised from what the system said (an OSError's errno, or the system's own words in
an error's text, as DuckDB and a worker's last line carry them) or, for a worker that died without
a word, from the state of its folder's disk now (`state_of`). Nothing here guesses beyond that.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

CAUSES: dict[int, str] = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the disk is read-only",
    errno.EFBIG: "a file grew past the size allowed",
    errno.EIO: "the disk reported an input/output error",
    errno.EACCES: "writing there was refused (permission denied)",
    errno.EPERM: "writing there was refused (operation not permitted)",
}
HINTS: dict[int, str] = {
    errno.ENOSPC: "Free some space on that disk (or set FTASSIST_HOME to a folder on another disk), then try again.",
    errno.EDQUOT: "Free some space within your quota (or ask for a larger one), then try again.",
    errno.EROFS: "Make that disk writable again (it may have been remounted read-only after an error), "
                 "or set FTASSIST_HOME to a writable folder, then try again.",
    errno.EFBIG: "The file size limit (`ulimit -f`) or the file system's largest file was reached: "
                 "raise the limit or move the data dir to another disk, then try again.",
    errno.EIO: "The disk may be failing: check it (`dmesg`), and move the data dir to a sound disk.",
    errno.EACCES: "Make the folder writable for the user running ftassist, or set FTASSIST_HOME to one that is.",
    errno.EPERM: "Make the folder writable for the user running ftassist, or set FTASSIST_HOME to one that is.",
}
# Faults recognised in an error's text (DuckDB's messages, a worker's reason): the system's own words for
# them. Permission errors are left out here: "permission denied" is also what a web service answers.
_TEXT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO)
_WORDS = {number: os.strerror(number).lower() for number in _TEXT_ERRNOS}
_PATH = re.compile(r"""(?:file|directory)\s+"([^"]+)"|'(/[^']+)'|"(/[^"]+)\"""")
FULL_MARGIN_BYTES = 1024 * 1024  # a disk with less than this free counts as full (a write of any size fails)


@dataclass(frozen=True)
class DiskFault:
    """A disk fault: its errno, the cause in words, where (a path, or ""), and the system's own words."""

    errno: int
    where: str = ""
    detail: str = ""

    @property
    def cause(self) -> str:
        return CAUSES[self.errno]

    @property
    def hint(self) -> str:
        return HINTS[self.errno]

    def __str__(self) -> str:
        where = f" ({self.where})" if self.where else ""
        detail = f": {self.detail}" if self.detail and self.detail.lower() not in self.cause else ""
        return f"{self.cause}{where}{detail}"


class DiskFaultError(OSError):
    """An OSError whose words are the fault's (`str(exc)` and `exc.strerror` name the cause and the place),
    raised where ftassist writes (the store, the journal) so every caller can say it as it is."""

    def __init__(self, fault: DiskFault, doing: str = ""):
        self.fault = fault
        self.doing = doing
        words = f"{doing}: {fault}" if doing else str(fault)
        super().__init__(fault.errno, words, fault.where or None)

    def __str__(self) -> str:
        return self.strerror


def in_text(text: str | None) -> DiskFault | None:
    """The fault an error's text names in the system's words ("No space left on device"...), with the
    path quoted on that line, if any; None when it names none."""
    if not text:
        return None
    lowered = text.lower()
    for number, words in _WORDS.items():
        at = lowered.find(words)
        if at < 0:
            continue
        line_start = text.rfind("\n", 0, at) + 1
        line_end = text.find("\n", at)
        line = text[line_start:line_end if line_end >= 0 else len(text)].strip()
        match = _PATH.search(line)  # the path on the line that names the fault (never a traceback's file)
        where = next((group for group in match.groups() if group), "") if match else ""
        return DiskFault(number, where, os.strerror(number))
    return None


def find(exc: BaseException | None) -> DiskFault | None:
    """The disk fault behind `exc` (itself, its cause or its context), or None when it is no disk fault."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        fault = getattr(exc, "fault", None)
        if isinstance(fault, DiskFault):
            return fault
        if isinstance(exc, OSError) and exc.errno in CAUSES:
            if exc.errno not in (errno.EACCES, errno.EPERM) or exc.filename:  # a file's, not a socket's
                where = exc.filename or exc.filename2 or ""
                return DiskFault(exc.errno, str(where), exc.strerror or os.strerror(exc.errno))
        elif not isinstance(exc, OSError) or exc.errno is None:
            fault = in_text(str(exc))
            if fault is not None:
                return fault
        exc = exc.__cause__ or exc.__context__
    return None


def state_of(folder: str | Path) -> DiskFault | None:
    """The fault the disk holding `folder` shows now: read-only, or (nearly) full; None when neither.
    The evidence for a process that died without saying why."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return DiskFault(errno.EROFS, str(folder), "mounted read-only")
    free_blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use the reserved blocks
    free = free_blocks * stats.f_frsize
    if free < FULL_MARGIN_BYTES:
        return DiskFault(errno.ENOSPC, str(folder), f"{free // 1024} KiB free")
    return None
