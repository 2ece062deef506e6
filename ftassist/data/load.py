"""Read a dataset file into `Record`s, one at a time, each with its source line.

Why streaming: a user may drop in a file of hundreds of megabytes; memory must stay
bounded by the largest record, never by the file. Why so careful about bad input:
every problem that can be pinned to a line becomes a `Record.problem` (the report
shows it next to the line), and only a file that cannot be read at all raises
`LoadError` (the CLI maps that to exit code 2).

Line numbers (`Record.line`, 1-based):
- JSONL: the physical line of the record.
- JSON: the line where the array element starts (a top-level object with a list
  under "data"/"examples"/"rows"/... is treated as that list; any other object is one record).
- CSV/TSV: the physical line where the row starts; the header is line 1.
- Parquet: row index + 1 (Parquet has no lines).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Iterator

import orjson

from ftassist.data.report import Issue, Record

FILE_TYPES = ("jsonl", "json", "csv", "parquet")
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Keys under which a top-level JSON object commonly holds its list of examples.
LIST_KEYS = ("data", "examples", "rows", "records", "items", "instances", "train")

DEFAULT_MAX_RECORD_BYTES = 32 * 2**20
DEFAULT_MAX_DEPTH = 100
_CHUNK = 2**20  # read size: big enough to amortise Python overhead, small enough for memory
_SNIFF = 8192
_BOM = b"\xef\xbb\xbf"

HINT_JSON_LINE = (
    "each line must be one complete JSON object; check for a trailing comma, "
    "an unescaped quote or a line break inside a string"
)
HINT_JSON_ELEMENT = (
    "each array element must be a complete JSON value; check for a trailing comma or an unescaped quote"
)
HINT_UTF8 = "save the file as UTF-8 (e.g. in your editor choose 'UTF-8'; or `iconv -f latin1 -t utf-8`)"


class LoadError(Exception):
    """The file cannot be read at all; the message is one line that says what to do."""


# --------------------------------------------------------------------------- file type


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise LoadError(f"file not found: {path} — check the path")
    if path.is_dir():
        raise LoadError(f"{path} is a directory — pass a .jsonl, .json, .csv or .parquet file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise LoadError(f"cannot open {path}: {exc.strerror or exc} — check the file's permissions") from None


_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (or .xlsx/.docx) — unzip it or export it as CSV/JSONL"),
    (b"\x1f\x8b", "a gzip archive — decompress it first (gunzip)"),
    (b"%PDF", "a PDF — export your data as JSONL, JSON, CSV or Parquet"),
    (b"PAR1", "a Parquet file with the wrong extension — rename it to .parquet"),
    (b"SQLite format 3", "an SQLite database — export the table as CSV or JSONL"),
    (b"\x89PNG", "a PNG image — upload the dataset file instead"),
    (b"\xff\xd8\xff", "a JPEG image — upload the dataset file instead"),
)


def _sniff_text(path: Path) -> bytes:
    """Return the first bytes of a text file, raising LoadError when it is clearly binary."""
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise LoadError(f"{path.name} looks like {what}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError(f"{path.name} is UTF-16 encoded — save it as UTF-8 and upload it again")
    if b"\x00" in head:
        raise LoadError(
            f"{path.name} looks like a binary file (it contains NUL bytes), not text — "
            "upload a UTF-8 .jsonl, .json or .csv file, or a .parquet file"
        )
    body = head[3:] if head.startswith(_BOM) else head
    if body:
        text = body.decode("utf-8", errors="replace")
        # the last character may be a multi-byte sequence cut by the sniff window
        bad = text[:-1].count("\ufffd") if len(head) == _SNIFF else text.count("\ufffd")
        control = sum(1 for ch in text if ch < " " and ch not in "\t\r\n\f")
        if (bad + control) > max(8, len(text) // 10):
            raise LoadError(
                f"{path.name} looks like a binary file (its start is not UTF-8 text) — "
                "upload a UTF-8 .jsonl, .json or .csv file, or a .parquet file"
            )
    return head


def detect_file_type(path: str | Path) -> str:
    """One of FILE_TYPES, from the extension (and, for .json/unknown, the first character).

    A `.json` file whose first line is one complete JSON value followed by more content
    is JSONL saved as .json, a common mistake that we simply accept.
    """
    path = Path(path)
    _check_readable(path)
    ext = path.suffix.lower()
    kind = EXTENSIONS.get(ext)
    if kind == "parquet":
        return kind
    if kind is None and ext not in ("", ".txt", ".jsonlines"):
        raise LoadError(
            f"unsupported file type '{ext}' — use .jsonl, .json, .csv, .tsv or .parquet"
        )
    head = _sniff_text(path)
    if kind == "csv":
        return kind
    stripped = head[3:].lstrip() if head.startswith(_BOM) else head.lstrip()
    first = stripped[:1]
    if kind == "jsonl":
        # a pretty-printed JSON document saved as .jsonl: its first line is a lone bracket
        if stripped.split(b"\n", 1)[0].strip() in (b"[", b"{") and b"\n" in stripped:
            return "json"
        return kind
    if kind is None:  # no useful extension: sniff
        if first == b"[":
            return "json"
        if first == b"{":
            return _json_or_jsonl(path)
        raise LoadError(
            f"cannot tell the format of {path.name} — give it a .jsonl, .json, .csv or .parquet extension"
        )
    # .json
    if first == b"{":
        return _json_or_jsonl(path)
    return "json"


def _json_or_jsonl(path: Path) -> str:
    """A file starting with '{': JSONL when its first line parses and more content follows."""
    with open(path, "rb") as fh:
        first = fh.readline(DEFAULT_MAX_RECORD_BYTES)
        if first.startswith(_BOM):
            first = first[3:]
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            return "json"  # a pretty-printed object (or broken JSON: the JSON reader will say where)
        while True:
            rest = fh.readline(_SNIFF)
            if not rest:
                return "json"  # a single one-line object
            if rest.strip():
                return "jsonl"


# --------------------------------------------------------------------------- records


def iter_records(
    path: str | Path,
    *,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    kind: str | None = None,
    max_decoded_bytes: int | None = None,
) -> Iterator[Record]:
    """Yield every record of the file in order (a generator: nothing is held but the current record).

    `kind` (one of FILE_TYPES) overrides the detected file type: a recovery reads a JSON array
    saved as .jsonl as the array it is. Raises LoadError (before the first record) when the file
    cannot be read at all.

    Bounded input: no record is decoded beyond `max_record_bytes` (it becomes a `record_too_large`
    problem on its line or row). Text formats decode to no more than their own bytes, so the upload
    limit on bytes bounds them; a Parquet file may decode to far more than it weighs, so its decoded
    size is held to `max_decoded_bytes` (default: the upload limit), checked on the footer before
    anything is decompressed and again while reading.
    """
    path = Path(path)
    detected = detect_file_type(path)
    kind = kind or detected
    if kind == "jsonl":
        return _iter_jsonl(path, max_record_bytes, max_depth)
    if kind == "json":
        return _iter_json(path, max_record_bytes, max_depth)
    if kind == "csv":
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        return _iter_csv(path, delimiter, max_record_bytes, max_depth)
    return _iter_parquet(path, max_record_bytes, max_decoded_bytes)


def iter_lines(path: str | Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[tuple[int, bytes | None, bool]]:
    """Yield (line number, line bytes without the newline or None when too large, ends_with_newline).

    Reads fixed-size chunks, so a 40 MB line costs at most max_record_bytes of memory.
    """
    lineno = 0
    with open(path, "rb", buffering=0) as fh:
        pending = b""
        skipping = False  # inside an oversized line: discard until its newline
        first = True
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            if first:
                first = False
                if chunk.startswith(_BOM):
                    chunk = chunk[3:]
            if skipping:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                chunk = chunk[nl + 1 :]
                skipping = False
                lineno += 1
                yield lineno, None, True
            parts = chunk.split(b"\n")
            tail = parts.pop()
            if pending and parts:
                parts[0] = pending + parts[0]
                pending = b""
            for line in parts:
                lineno += 1
                if len(line) > max_record_bytes:
                    yield lineno, None, True
                else:
                    yield lineno, line, True
            if pending:
                pending += tail
            else:
                pending = tail
            if len(pending) > max_record_bytes:
                pending = b""
                skipping = True
        if skipping:
            yield lineno + 1, None, False
        elif pending:
            yield lineno + 1, pending, False


_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(raw: bytes, limit: int) -> int:
    """Nesting depth of a JSON text, counted without recursion; stops early above `limit`."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return 0  # cannot exceed the limit: skip the scan (the common case)
    stripped = _STRING_RE.sub(b"", raw)
    depth = 0
    best = 0
    for m in re.finditer(rb"[\[\]{}]", stripped):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > best:
                best = depth
                if best > limit:
                    return best
        else:
            depth -= 1
    return best


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_problem(raw: bytes, line: int, col_offset: int, hint: str) -> tuple[Any, Issue | None]:
    """orjson refused `raw`: find out why, or rescue what stdlib json accepts (lone surrogates)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        pre = raw[: exc.start]
        line += pre.count(b"\n")
        nl = pre.rfind(b"\n")
        col = exc.start - nl if nl >= 0 else exc.start + 1 + col_offset
        return None, Issue(
            line=line,
            code="invalid_utf8",
            message=f"bytes are not valid UTF-8 at byte column {col} (byte 0x{raw[exc.start]:02x})",
            hint=HINT_UTF8,
            column=col,
        )
    try:
        # stdlib json accepts lone surrogate escapes (orjson does not): keep the record so
        # validation can say precisely that its content cannot be encoded.
        return json.loads(text, parse_constant=_no_constants), None
    except RecursionError:
        return None, Issue(line=line, code="too_deeply_nested", message="the record is nested too deeply to read",
                           hint="flatten the record: chat examples need only a few levels of nesting")
    except json.JSONDecodeError as exc:
        col = exc.colno + (col_offset if exc.lineno == 1 else 0)
        return None, Issue(
            line=line + exc.lineno - 1,
            code="invalid_json",
            message=f"malformed JSON: {exc.msg} (column {col})",
            hint=hint,
            column=col,
        )
    except ValueError as exc:
        return None, Issue(line=line, code="invalid_json", message=f"malformed JSON: {exc}", hint=hint)


def _too_large(line: int, limit: int) -> Issue:
    return Issue(
        line=line,
        code="record_too_large",
        message=f"record is larger than {limit / 2**20:g} MB and was skipped",
        hint="split the record or remove the oversized content; fine-tuning examples are far smaller",
    )


def _too_deep(line: int, depth: int, limit: int) -> Issue:
    return Issue(
        line=line,
        code="too_deeply_nested",
        message=f"record is nested {'more than ' + str(limit) if depth > limit else str(depth)} levels deep "
        f"(the limit is {limit})",
        hint="flatten the record: chat examples need only a few levels of nesting",
    )


def _iter_jsonl(path: Path, max_record_bytes: int, max_depth: int) -> Iterator[Record]:
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for lineno, line, complete in iter_lines(path, max_record_bytes):
        if line is None:
            yield Record(line=lineno, problem=_too_large(lineno, max_record_bytes), raw_size=max_record_bytes + 1)
            continue
        if line.endswith(b"\r"):
            line = line[:-1]
        size = len(line)
        if not size or line.isspace():
            continue
        if line.count(b"[") + line.count(b"{") > max_depth:
            depth = json_depth(line, max_depth)
            if depth > max_depth:
                yield Record(line=lineno, problem=_too_deep(lineno, depth, max_depth), raw_size=size)
                continue
        try:
            yield Record(lineno, loads(line), None, size)  # positional: twice as fast, once per record
            continue
        except decode_error:
            pass
        data, problem = _parse_problem(line, lineno, 0, HINT_JSON_LINE)
        if problem is not None and problem.code == "invalid_json" and not complete:
            problem.message += " — the last line is incomplete (was the file truncated?)"
        yield Record(line=lineno, data=data, problem=problem, raw_size=size)


# --------------------------------------------------------------------------- JSON documents

_OUTSIDE = re.compile(rb'["\[\]{},]')
_INSIDE = re.compile(rb'["\\]')
_WS = b" \t\r\n"


class _Element:
    """The element being cut out of the target list (or the whole top-level object)."""

    __slots__ = ("start", "line", "col", "oversize", "deep", "after_comma")

    def __init__(self, start: int, line: int, col: int, after_comma: bool = False) -> None:
        self.start, self.line, self.col = start, line, col
        self.oversize = False
        self.deep = 0
        self.after_comma = after_comma


def _iter_json(path: Path, max_record_bytes: int, max_depth: int) -> Iterator[Record]:
    """Stream a JSON document: split the elements of its top-level list without parsing it whole.

    A small scanner jumps from one structural byte to the next (regex search), tracking
    strings and bracket depth without recursion, so any nesting is safe; it cuts each element
    of the target list and hands it to orjson. The target list is the top-level array, or the
    first list under one of LIST_KEYS in a top-level object; any other top-level value is one
    record. Memory: the current element plus one read chunk.
    """
    with open(path, "rb", buffering=0) as fh:
        buf = fh.read(_CHUNK)
        if buf.startswith(_BOM):
            buf = buf[3:]
        base_line = 1  # line number of buf[0]
        while buf and not buf.strip(_WS):  # skip leading blank chunks
            base_line += buf.count(b"\n")
            buf = fh.read(_CHUNK)
        if not buf:
            return  # empty or whitespace only: no records
        lead = len(buf) - len(buf.lstrip(_WS))
        base_line += buf.count(b"\n", 0, lead)
        buf = buf[lead:]
        eof = False

        def line_of(pos: int) -> tuple[int, int]:
            nl = buf.rfind(b"\n", 0, pos)
            return base_line + buf.count(b"\n", 0, pos), pos - nl  # 1-based column

        def read_more() -> bool:
            nonlocal buf, eof
            more = fh.read(_CHUNK)
            if not more:
                eof = True
                return False
            buf += more
            return True

        first = buf[:1]
        if first not in (b"[", b"{"):
            # a top-level scalar: one record, read with a bound
            while len(buf) <= max_record_bytes and read_more():
                pass
            if len(buf) > max_record_bytes:
                yield Record(line=base_line, problem=_too_large(base_line, max_record_bytes), raw_size=len(buf))
                return
            yield _parse_element(buf.rstrip(_WS), base_line, 1, max_depth, HINT_JSON_ELEMENT, 0)
            return

        doc_is_object = first == b"{"
        depth = 0
        in_str = False
        target = 0 if doc_is_object else 1  # depth of the list whose elements we yield; 0: the whole doc
        elem: _Element | None = _Element(0, base_line, 1) if doc_is_object else None
        key_start = -1  # start of a string at depth 1 of a top-level object (a candidate key)
        last_key = b""
        target_done = False
        closed_at = -1  # position just after the top-level value's closing bracket
        i = 0
        while True:
            m = (_INSIDE if in_str else _OUTSIDE).search(buf, i)
            if m is None:
                if eof:
                    break
                # drop what is no longer needed, then read on
                keep = len(buf)
                if elem is not None and not elem.oversize:
                    if len(buf) - elem.start > max_record_bytes:
                        elem.oversize = True
                        lead = len(buf) - elem.start - len(buf[elem.start :].lstrip(_WS))
                        elem.line, elem.col = line_of(elem.start + lead)
                    else:
                        keep = elem.start
                if key_start >= 0:
                    keep = min(keep, key_start)
                base_line += buf.count(b"\n", 0, keep)
                buf = buf[keep:]
                i = len(buf)
                if elem is not None and not elem.oversize:
                    elem.start -= keep
                if key_start >= 0:
                    key_start -= keep
                read_more()
                continue
            pos = m.start()
            ch = buf[pos]
            if in_str:
                if ch == 0x5C:  # backslash: skip the escaped byte
                    if pos + 1 >= len(buf) and not eof:
                        i = pos
                        read_more()
                        continue
                    i = pos + 2
                    continue
                in_str = False
                if key_start >= 0:
                    last_key = buf[key_start + 1 : pos]
                    key_start = -1
                i = pos + 1
                continue
            i = pos + 1
            if ch == 0x22:  # opening quote
                in_str = True
                if depth == 1 and target == 0 and not target_done:
                    key_start = pos
            elif ch == 0x5B or ch == 0x7B:  # [ {
                depth += 1
                if elem is not None and not elem.deep and depth - target > max_depth:
                    elem.deep = depth - target
                if depth == 1 and target == 1:
                    elem = _start_element(pos + 1, line_of)
                elif (
                    ch == 0x5B and depth == 2 and target == 0 and not target_done
                    and last_key.decode("utf-8", "replace") in LIST_KEYS
                ):
                    target = 2  # stream this list's elements instead of the whole object
                    elem = _start_element(pos + 1, line_of)
            elif ch == 0x2C:  # comma
                if target and depth == target and elem is not None:
                    yield _finish(buf, elem, pos, max_record_bytes, max_depth, line_of)
                    elem = _start_element(pos + 1, line_of, after_comma=True)
            else:  # ] }
                depth -= 1
                if target and depth == target - 1 and not target_done:
                    if elem is not None:
                        if elem.oversize or buf[elem.start : pos].strip(_WS):
                            yield _finish(buf, elem, pos, max_record_bytes, max_depth, line_of)
                        elif elem.after_comma:
                            ln, col = line_of(pos)
                            yield _bad(ln, col, "malformed JSON: trailing comma before the closing ']'")
                        elem = None
                    if ch != 0x5D:
                        ln, col = line_of(pos)
                        yield _bad(ln, col, "malformed JSON: '}' closes a list that was opened with '['")
                    target_done = True
                if depth <= 0:
                    if target == 0 and elem is not None:
                        yield _finish(buf, elem, pos + 1, max_record_bytes, max_depth, line_of)
                        elem = None
                    closed_at = pos + 1
                    break

        if closed_at >= 0:
            # only whitespace may follow the top-level value
            rest = buf[closed_at:]
            newlines = base_line + buf.count(b"\n", 0, closed_at)
            while True:
                stripped = rest.lstrip(_WS)
                if stripped:
                    ln = newlines + rest.count(b"\n", 0, len(rest) - len(stripped))
                    yield Record(line=ln, problem=Issue(
                        line=ln, code="invalid_json",
                        message="unexpected content after the end of the top-level JSON value",
                        hint="a .json file holds one value (an array of examples); use .jsonl for one object per line",
                    ))
                    return
                newlines += rest.count(b"\n")
                rest = fh.read(_CHUNK)
                if not rest:
                    return

        # the file ended inside the top-level value
        if elem is not None and (elem.oversize or buf[elem.start :].strip(_WS)):
            rec = _finish(buf, elem, len(buf), max_record_bytes, max_depth, line_of)
            if rec.problem is not None:
                rec.problem.message += " — the file ends inside this element (was it truncated?)"
                yield rec
                return
            yield rec
        ln, _ = line_of(len(buf))
        yield Record(line=ln, problem=Issue(
            line=ln, code="invalid_json",
            message="the JSON document is not closed (missing ']' or '}'): was the file truncated?",
            hint="check the end of the file; a .json file must end with the closing ']'",
        ))


def _bad(line: int, col: int | None, message: str) -> Record:
    return Record(line=line, problem=Issue(line=line, code="invalid_json", column=col, message=message,
                                           hint=HINT_JSON_ELEMENT))


def _start_element(start: int, line_of, after_comma: bool = False) -> _Element:
    ln, col = line_of(start)
    return _Element(start, ln, col, after_comma)


def _finish(buf: bytes, elem: _Element, end: int, max_record_bytes: int, max_depth: int, line_of) -> Record:
    """Parse the element buf[elem.start:end]; its line is where its first non-space byte is."""
    if elem.deep:
        line = elem.line
        if not elem.oversize:
            raw = buf[elem.start : end]
            line = line_of(elem.start + len(raw) - len(raw.lstrip(_WS)))[0]
        return Record(line=line, problem=_too_deep(line, elem.deep, max_depth))
    if elem.oversize:
        return Record(line=elem.line, problem=_too_large(elem.line, max_record_bytes), raw_size=max_record_bytes + 1)
    raw = buf[elem.start : end]
    lead = len(raw) - len(raw.lstrip(_WS))
    if lead:
        line, col = line_of(elem.start + lead)
        raw = raw[lead:]
    else:
        line, col = elem.line, elem.col
    raw = raw.rstrip(_WS)
    if not raw:
        return _bad(line, col, "malformed JSON: empty array element (two commas in a row?)")
    if len(raw) > max_record_bytes:
        return Record(line=line, problem=_too_large(line, max_record_bytes), raw_size=len(raw))
    return _parse_element(raw, line, col, max_depth, HINT_JSON_ELEMENT, col - 1)


def _parse_element(raw: bytes, line: int, col: int, max_depth: int, hint: str, col_offset: int) -> Record:
    depth = json_depth(raw, max_depth)
    if depth > max_depth:
        return Record(line=line, problem=_too_deep(line, depth, max_depth), raw_size=len(raw))
    try:
        return Record(line=line, data=orjson.loads(raw), raw_size=len(raw))
    except orjson.JSONDecodeError:
        data, problem = _parse_problem(raw, line, col_offset, hint)
        return Record(line=line, data=data, problem=problem, raw_size=len(raw))


# --------------------------------------------------------------------------- CSV / TSV

_SURROGATE = re.compile("[\udc80-\udcff]")


def _maybe_json(cell: str, max_depth: int) -> Any:
    """A cell that looks like a JSON array/object (e.g. a `messages` column) is decoded."""
    s = cell.strip()
    if len(s) >= 2 and ((s[0] == "[" and s[-1] == "]") or (s[0] == "{" and s[-1] == "}")):
        raw = s.encode("utf-8", "surrogatepass")
        if json_depth(raw, max_depth) > max_depth:
            return cell
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return cell
    return cell


def _iter_csv(path: Path, delimiter: str, max_record_bytes: int, max_depth: int) -> Iterator[Record]:
    csv.field_size_limit(max(csv.field_size_limit(), max_record_bytes))
    with open(path, "r", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise LoadError(f"{path.name}: cannot read the CSV header ({exc}) — check the first line") from None
        if header is None:
            return
        header = [h.strip() for h in header]
        if not any(header):
            raise LoadError(f"{path.name}: the first line must be a header with column names")
        if _SURROGATE.search("".join(header)):
            raise LoadError(f"{path.name}: the header is not valid UTF-8 — save the file as UTF-8")
        width = len(header)
        prev = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line = prev + 1
                prev = reader.line_num
                yield Record(line=line, problem=Issue(
                    line=line, code="invalid_csv", message=f"malformed CSV row: {exc}",
                    hint="check the quoting of this row (a quote inside a cell must be doubled: \"\")",
                ))
                continue
            line = prev + 1
            prev = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            size = sum(len(c) for c in row) + len(row)
            joined = "".join(row)
            if _SURROGATE.search(joined):
                yield Record(line=line, problem=Issue(
                    line=line, code="invalid_utf8", message="row contains bytes that are not valid UTF-8",
                    hint=HINT_UTF8,
                ), raw_size=size)
                continue
            if len(row) > width:
                yield Record(line=line, problem=Issue(
                    line=line, code="invalid_csv",
                    message=f"row has {len(row)} cells but the header has {width} columns",
                    hint="quote cells that contain the delimiter, or fix the header",
                ), raw_size=size)
                continue
            data = {}
            for k, v in zip(header, row):
                data[k] = _maybe_json(v, max_depth) if v[:1] in ("[", "{") or v[:1].isspace() else v
            for k in header[len(row):]:
                data[k] = None
            yield Record(line=line, data=data, raw_size=size)


# --------------------------------------------------------------------------- Parquet


def json_value(value: Any) -> Any:
    """What a file held (Parquet bytes, dates and decimals; Python literals' tuples and sets) as what JSON holds."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_value(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


PARQUET_BATCH_BYTES = 16 * 2**20  # decoded bytes per batch read: memory stays near this, whatever the file


def default_max_decoded_bytes() -> int:
    """The most a whole file may decode to: the app's upload limit (`FTASSIST_MAX_UPLOAD`, default 1 GB)."""
    from ftassist import config

    return config.max_upload_bytes()


def _size(n: float) -> str:
    for unit, factor in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= factor:
            return f"{n / factor:.4g} {unit}"
    return f"{int(n)} bytes"


def _too_big_file(name: str, what: str, limit: int) -> LoadError:
    return LoadError(f"{name}: {what}, more than the {_size(limit)} a file may decode to — split the file, "
                     "or raise FTASSIST_MAX_UPLOAD if this machine has the memory")


_PHYSICAL_WIDTH = {"BOOLEAN": 1 / 8, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12, "BYTE_ARRAY": 4}


def _decoded_floor(column, schema_column) -> float:
    """The least a column chunk can decode to, from its footer: every non-null value takes its width (a byte
    array at least its 4-byte offset, or index when read as a dictionary), and when the statistics say every
    value is the same byte string (min == max), its length each time. Catches what the uncompressed sizes
    hide: a run-length-encoded index repeating one value millions of times, in a nested column as anywhere."""
    stats = column.statistics
    if stats is None or not stats.has_null_count:
        return 0.0
    values = max(column.num_values - stats.null_count, 0)
    kind = column.physical_type
    width = schema_column.length if kind == "FIXED_LEN_BYTE_ARRAY" else _PHYSICAL_WIDTH.get(kind, 0)
    if kind == "BYTE_ARRAY" and stats.has_min_max and stats.min == stats.max and isinstance(stats.min, (str, bytes)):
        width += len(stats.min.encode() if isinstance(stats.min, str) else stats.min)
    return values * (width or 0)


def _parquet_plan(pf, name: str, max_record_bytes: int, max_decoded_bytes: int) -> list[tuple[int, int]]:
    """From the footer alone (nothing decompressed yet): refuse a file whose row groups decode to more than
    the limit, and choose each row group's batch size so one batch decodes to about PARQUET_BATCH_BYTES.
    Returns [(row group, rows per batch)]."""
    meta = pf.metadata
    plan, total, first_row = [], 0, 1
    for index in range(meta.num_row_groups):
        group = meta.row_group(index)
        rows = max(group.num_rows, 0)
        decoded = max(group.total_byte_size, sum(group.column(c).total_uncompressed_size
                                                 for c in range(group.num_columns)),
                      sum(_decoded_floor(group.column(c), meta.schema.column(c)) for c in range(group.num_columns)))
        total += decoded
        if total > max_decoded_bytes:
            raise _too_big_file(name, f"its data decompresses to {_size(total)} by row {first_row + rows - 1} "
                                      f"(row group {index + 1})", max_decoded_bytes)
        per_row = decoded / rows if rows else 0
        batch = 1 if per_row > max_record_bytes else max(1, min(1024, int(PARQUET_BATCH_BYTES // max(per_row, 1))))
        plan.append((index, batch))
        first_row += rows
    return plan


def _row_sizes(batch, max_record_bytes: int) -> list[int]:
    """Decoded bytes of each row of a record batch, without materialising it: a dictionary column
    counts each row's value length (one short value repeated a million times is a million values), any
    other column its buffers' share (per row only when the column could hold a row over the cap)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = batch.num_rows
    sizes = [0] * rows
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            lengths = pc.fill_null(pc.take(pc.binary_length(column.dictionary), column.indices), 0).to_pylist()
            sizes = [a + b for a, b in zip(sizes, lengths)]
        elif column.nbytes <= max_record_bytes:
            share = column.nbytes // max(rows, 1)
            sizes = [a + share for a in sizes]
        else:
            sizes = [a + column.slice(i, 1).nbytes for i, a in enumerate(sizes)]
    return sizes


def _iter_parquet(path: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                  max_decoded_bytes: int | None = None) -> Iterator[Record]:
    """Rows in file order; `line` is the row index + 1 and `raw_size` the row's decoded bytes.

    Bounded like the text readers: the footer is checked before anything is decompressed (a few
    kilobytes of zstd can hold gigabytes of text), rows are read in batches of about
    PARQUET_BATCH_BYTES, a row larger than `max_record_bytes` is reported on its row and skipped, and
    the file stops with a LoadError naming the row where its decoded data passes `max_decoded_bytes`
    (whatever the footer claimed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        return
    limit = default_max_decoded_bytes() if max_decoded_bytes is None else max_decoded_bytes
    try:
        schema = pq.read_schema(path)
        texts = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                 or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        pf = pq.ParquetFile(path, read_dictionary=texts)  # repeated values stay one copy until a row is read
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError with long texts
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(f"{path.name} is not a readable Parquet file ({first}) — re-export it") from None
    plan = _parquet_plan(pf, path.name, max_record_bytes, limit)

    def plain(t: pa.DataType) -> bool:
        if pa.types.is_struct(t):
            return all(plain(t.field(i).type) for i in range(t.num_fields))
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return plain(t.value_type)
        return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
                or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t))

    needs_conversion = not all(plain(f.type) for f in pf.schema_arrow)
    row = 0
    decoded = 0
    try:
        for group, batch_rows in plan:
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[group]):
                sizes = _row_sizes(batch, max_record_bytes)
                whole = None if sum(sizes) > PARQUET_BATCH_BYTES else batch.to_pylist()
                for i, size in enumerate(sizes):
                    row += 1
                    decoded += size
                    if decoded > limit:
                        raise _too_big_file(path.name, f"its data passes {_size(limit)} at row {row}", limit)
                    if size > max_record_bytes:
                        yield Record(line=row, problem=_too_large(row, max_record_bytes), raw_size=size)
                        continue
                    data = whole[i] if whole is not None else batch.slice(i, 1).to_pylist()[0]
                    if needs_conversion:
                        data = json_value(data)
                    yield Record(line=row, data=data, raw_size=size)
    except (OSError, pa.ArrowException) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LoadError(f"{path.name}: Parquet data is corrupt after row {row} ({first}) — re-export it") from None


# --------------------------------------------------------------------------- Hugging Face Hub


def load_hub_dataset(
    name: str, split: str = "train", out_dir: Path | None = None, config: str | None = None
) -> Path:
    """Fetch a Hub dataset with `datasets.load_dataset` and write it as JSONL; return that path.

    Every failure (offline, unknown id, gated, bad split) becomes a one-line LoadError,
    because the UI and CLI show it to a person, never a traceback.
    """
    from ftassist import config as app_config

    name = (name or "").strip()
    if not name or any(c.isspace() for c in name):
        raise LoadError(f"'{name}' is not a Hugging Face dataset id — use the form owner/name")
    from ftassist.hub_reach import client_offline, hub_offline, hub_reachable

    if not client_offline() and not hub_reachable():  # fail in seconds, not after the client's retries
        raise LoadError(
            f"could not reach the Hugging Face Hub to fetch {name} (offline?) — "
            "download the file and upload it instead"
        )
    try:
        import datasets
        from datasets.utils import logging as ds_logging

        ds_logging.set_verbosity_error()
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # noqa: BLE001 - the datasets library raises a zoo of types
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        offline = hub_offline()
        kind = type(exc).__name__
        if offline or isinstance(exc, ConnectionError) or "Offline" in text or "Connection" in kind:
            raise LoadError(
                f"could not reach the Hugging Face Hub to fetch {name} (offline?) — "
                "download the file and upload it instead"
            ) from None
        if "NotFound" in kind or "doesn't exist" in text or "not found" in text.lower():
            raise LoadError(
                f"dataset {name} was not found on the Hugging Face Hub — check the id "
                "(private or gated datasets need `huggingface-cli login`)"
            ) from None
        if "split" in text.lower():
            raise LoadError(f"dataset {name} has no split '{split}' — pick another split") from None
        if "config" in text.lower():
            raise LoadError(f"dataset {name} needs a config name ({text[:200]})") from None
        raise LoadError(f"could not load dataset {name}: {text[:300]}") from None
    out = Path(out_dir) if out_dir is not None else app_config.uploads_dir()
    out.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{name}_{config or ''}_{split}").strip("_")
    dest = out / f"{safe}.jsonl"
    tmp = dest.with_suffix(".jsonl.part")
    try:
        _write_hub_rows(ds, tmp, name, default_max_decoded_bytes())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return dest


def _write_hub_rows(rows, out: Path, name: str, max_decoded_bytes: int,
                    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> int:
    """Write a Hub dataset's rows (Arrow, decoded one at a time) as JSONL, held to the same bounds as an
    upload: a row over `max_record_bytes` or a total over `max_decoded_bytes` stops it, naming the row."""
    total = 0
    with open(out, "wb") as fh:
        for index, row in enumerate(rows, start=1):
            line = orjson.dumps(json_value(row))
            if len(line) > max_record_bytes:
                raise LoadError(f"{name}: row {index} is {_size(len(line))} as JSON, more than the "
                                f"{_size(max_record_bytes)} a record may take — pick a dataset of chat examples")
            total += len(line) + 1
            if total > max_decoded_bytes:
                raise _too_big_file(name, f"its rows pass {_size(max_decoded_bytes)} at row {index}", max_decoded_bytes)
            fh.write(line)
            fh.write(b"\n")
    return total


def parse_hub_id(text: str) -> tuple[str, str | None, str | None]:
    """(id, subset, split) of `org/name[:subset][@split]` (what follows `hf:`): a subset (a `datasets` config)
    and a split may be named with the id, e.g. `openai/gsm8k:main@test`; each is None when not named."""
    rest, at, split = text.partition("@")
    name, colon, subset = rest.partition(":")
    return name.strip(), (subset.strip() or None) if colon else None, (split.strip() or None) if at else None


def _fetch_hub(text: str, hub_dir: Path | None) -> Path:
    name, subset, split = parse_hub_id(text)
    named = {"config": subset} if subset else {}
    if split:
        named["split"] = split
    return load_hub_dataset(name, out_dir=hub_dir, **named)


def resolve_source(path_or_id: str, hub_dir: Path | None = None) -> Path:
    """The file to read for a local path or a Hugging Face dataset id, fetched into `hub_dir` when needed.

    An id is `hf:org/name`, or a string that is not an existing file, contains a slash and has no
    file extension (`org/name`); anything else is a local path and must exist. LoadError otherwise.
    An id may name its subset and split: `hf:org/name:subset@split` (`parse_hub_id`; default: the
    dataset's only subset, split train).
    """
    text = (path_or_id or "").strip()
    if not text:
        raise LoadError("no dataset given — pass a file path or a Hugging Face dataset id (hf:org/name)")
    if text.startswith("hf:"):
        return _fetch_hub(text[3:], hub_dir)
    path = Path(text).expanduser()
    if path.exists() or "/" not in text or path.suffix:
        if not path.exists():
            raise LoadError(f"{text}: no such file — check the path")
        return path
    return _fetch_hub(text, hub_dir)


def read_text_preview(path: str | Path, line: int, max_chars: int = 2000) -> str:
    """The source text of one line (for the UI's preview of an offending record), bounded."""
    for lineno, raw, _ in iter_lines(path, max_record_bytes=max_chars * 4):
        if lineno == line:
            if raw is None:
                return "(line too long to preview)"
            return raw.decode("utf-8", "replace")[:max_chars]
        if lineno > line:
            break
    return ""


__all__ = [
    "LoadError",
    "FILE_TYPES",
    "detect_file_type",
    "iter_records",
    "iter_lines",
    "json_depth",
    "load_hub_dataset",
    "parse_hub_id",
    "read_text_preview",
    "resolve_source",
]
