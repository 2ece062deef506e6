"""Say what is wrong with the FILE when its lines fail the same way, and read it the way it was meant.

Why: a chat file written with Python's `str()` fails on every line with the same "malformed JSON";
four thousand identical rows hide the one thing the person needs to hear (the file is Python, not
JSON) and Fix & split would drop every record. The diagnosis is computed from the errors the check
already collected; the file is read again only when most records failed (or bytes were not UTF-8),
so a clean file costs nothing. `recover_records` reads the file as it was meant, only where the
intent is unambiguous: `ast.literal_eval` (never `eval`), the detected encoding, the JSON array or
the concatenated pretty-printed objects.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from ftassist.data.load import json_value
from ftassist.data.report import Diagnosis, Issue, IssueGroup, Record

SAMPLE_LINES = 200  # failing lines read to tell the cause apart
MAX_WHOLE_FILE = 256 * 2**20  # recoveries that parse the whole text at once stop above this size
MAX_RANGES = 12  # line ranges written out in a group before "and N more"
PARSE_CODES = ("invalid_json", "invalid_utf8", "data_type")
_UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}

# CSV headers: names people give the prompt and the answer columns, mapped to the instruction format
PROMPT_COLUMNS = ("question", "query", "input_text", "user", "human", "prompt_text", "request", "source")
ANSWER_COLUMNS = ("answer", "response", "reply", "assistant", "gpt", "target", "label_text", "output_text")
EXPECTED_COLUMNS = "messages; instruction + output (input optional); prompt + completion; or conversations"


# --------------------------------------------------------------------------- grouping


def line_ranges(lines: Iterable[int]) -> str:
    """'1-4,130; 4,200': sorted lines as ranges, thousands separated (ranges joined by '; ')."""
    ordered = sorted(set(lines))
    if not ordered:
        return ""
    if ordered == [0]:
        return "file"
    ranges: list[tuple[int, int]] = []
    for line in ordered:
        if ranges and line == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], line)
        else:
            ranges.append((line, line))
    parts = [("file" if a == 0 else f"{a:,}") if a == b else f"{a:,}-{b:,}" for a, b in ranges[:MAX_RANGES]]
    if len(ranges) > MAX_RANGES:
        parts.append(f"and {len(ranges) - MAX_RANGES:,} more")
    return "; ".join(parts)


_NUMBER = re.compile(r"\d[\d,.]*")
_COLUMN = re.compile(r"\s*\((?:byte )?column \d+\)|\s*at byte column \d+(?: \(byte 0x[0-9a-f]{2}\))?")


def group_issues(issues: Iterable[Issue]) -> list[IssueGroup]:
    """Issues with the same code and message shape (numbers aside) as one group, in order of first line."""
    groups: dict[tuple[str, str], list[Issue]] = {}
    for issue in issues:
        groups.setdefault((issue.code, _NUMBER.sub("#", issue.message)), []).append(issue)
    out = []
    for members in groups.values():
        first = members[0]
        message = first.message
        if len(members) > 1 and any(m.message != message for m in members):
            message = _COLUMN.sub("", message)  # the columns differ from line to line
        out.append(IssueGroup(code=first.code, message=message, hint=first.hint,
                              lines=line_ranges(m.line for m in members), count=len(members),
                              first_line=min(m.line for m in members), severity=first.severity))
    out.sort(key=lambda g: g.first_line)
    return out


# --------------------------------------------------------------------------- when to look


_UTF16_SNIFF_BYTES = 512  # what tells UTF-16 without a byte-order mark: the file's first bytes


def utf16_encoding(path: str | Path) -> str | None:
    """'utf-16-le' / 'utf-16-be' for a UTF-16 file, else None.

    With a byte-order mark, the mark says which. Without one (some Windows tools and .NET's
    `Encoding.Unicode` writers leave it out), a data file's structure is ASCII (`{`, `"role"`,
    a CSV header), so at least half of the head's characters have a NUL high byte: on the odd
    bytes for little-endian, on the even ones for big-endian, and almost none on the others. A
    UTF-8 or Latin-1 text file holds no NUL at all. It must also start as data does: `{`, `[`
    or a letter."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_UTF16_SNIFF_BYTES)
    except OSError:
        return None
    marked = _UTF16_BOMS.get(head[:2])
    if marked or len(head) < 4:
        return marked
    head = head[: len(head) // 2 * 2]
    for encoding, high_bytes, low_bytes in (("utf-16-le", head[1::2], head[0::2]),
                                            ("utf-16-be", head[0::2], head[1::2])):
        if high_bytes.count(0) * 2 >= len(high_bytes) and low_bytes.count(0) * 50 <= len(low_bytes):
            first = head.decode(encoding, errors="replace").lstrip()[:1]
            if first in ("{", "[") or first.isalpha():
                return encoding
    return None


def needs_diagnosis(n_records: int, errors: list[Issue]) -> bool:
    """Whether to look at the file as a whole: most records failed, or some bytes were not UTF-8."""
    if any(issue.code in ("invalid_utf8", "utf16_file") for issue in errors):
        return True
    return _most_records(n_records, [issue for issue in errors if issue.line > 0])


def _most_records(n_records: int, issues: list[Issue]) -> bool:
    """Whether `issues` fall on at least half of the file's records (the lines a cause is told from)."""
    return bool(issues) and 2 * len({issue.line for issue in issues}) >= max(n_records, 1)


def diagnose(path: str | Path, n_records: int, errors: list[Issue]) -> list[Diagnosis]:
    """The file-level causes behind the errors (an empty list when there is none to name)."""
    path = Path(path)
    if not needs_diagnosis(n_records, errors):
        return []
    out: list[Diagnosis] = []
    utf16 = utf16_encoding(path)
    if utf16:  # the check read it decoded: its other errors are the UTF-8 copy's, line for line
        encoding = Diagnosis("utf16_file", f"the file is {utf16.upper()} encoded, not UTF-8",
                             "save it as UTF-8; Fix & split converts it for you", "file", max(n_records, 1), True)
        others = [issue for issue in errors if issue.line > 0]
        if not _most_records(n_records, others):  # no shape to tell: no copy to make
            return [encoding]
        with _utf8_copy(path, utf16) as copy:
            return [encoding, *_structural(copy, n_records, others)]
    utf8_errors = [issue for issue in errors if issue.code == "invalid_utf8"]
    if utf8_errors:
        encoding = legacy_encoding(path)
        out.append(_encoding_diagnosis(encoding, utf8_errors))
        if encoding:  # lines not UTF-8 were not parsed: their shape shows in a UTF-8 copy
            with _utf8_copy(path, encoding) as copy:
                return out + _shape_causes(copy)
    return out + _structural(path, n_records, errors)


def _structural(path: Path, n_records: int, errors: list[Issue]) -> list[Diagnosis]:
    """The cause in the file's shape (Python literals, an array in a .jsonl, CSV columns...), if any."""
    from ftassist.data.load import LoadError, detect_file_type

    out: list[Diagnosis] = []
    try:
        kind = detect_file_type(path)
    except LoadError:
        return out
    failed = [issue for issue in errors if issue.line > 0 and issue.code != "invalid_utf8"]
    if not _most_records(n_records, failed):
        return out
    if kind == "jsonl":  # lines that parse (and fail as records) are no cause in the file's shape
        unparsed = [issue for issue in failed if issue.code == "invalid_json"]
        found = _jsonl_diagnosis(path, unparsed) if _most_records(n_records, unparsed) else None
    elif kind == "json":
        found = _json_diagnosis(path, failed)
    elif kind == "csv":
        found = _csv_diagnosis(path, failed)
    else:
        found = None
    if found is not None:
        out.append(found)
    return out


# --------------------------------------------------------------------------- the causes


def _encoding_diagnosis(encoding: str | None, issues: list[Issue]) -> Diagnosis:
    """The cause of lines that are not UTF-8: the file's `legacy_encoding`, or a mix that cannot be told (None)."""
    lines = line_ranges(issue.line for issue in issues)
    if encoding:
        return Diagnosis("legacy_encoding", f"the file is not UTF-8: it reads as {encoding_label(encoding)}",
                         "save it as UTF-8 (or `iconv -f latin1 -t utf-8`); Fix & split converts it for you",
                         lines, len(issues), True)
    return Diagnosis("mixed_encoding", "the file mixes UTF-8 with another encoding: its encoding cannot be told",
                     "re-export the file as UTF-8 from where it came from", lines, len(issues), False)


def encoding_label(encoding: str) -> str:
    return {"cp1252": "Windows-1252 (Latin-1)", "latin-1": "Latin-1 (ISO-8859-1)"}.get(encoding, encoding)


def legacy_encoding(path: Path) -> str | None:
    """'cp1252' or 'latin-1' when no line holds valid multi-byte UTF-8 (so the intent is clear), else None."""
    from ftassist.data.load import _BOM, iter_lines

    with open(path, "rb") as fh:
        if fh.read(3) == _BOM:
            return None
    encoding = "cp1252"
    for _, line, _ in iter_lines(path):
        if line is None or line.isascii():
            continue
        try:
            line.decode("utf-8")
            return None  # this line is UTF-8: the file mixes encodings
        except UnicodeDecodeError:
            pass
        if encoding == "cp1252":
            try:
                line.decode("cp1252")
            except UnicodeDecodeError:
                encoding = "latin-1"  # bytes cp1252 leaves undefined: plain ISO-8859-1
    return encoding


def _failing_lines(path: Path, issues: list[Issue]) -> list[bytes]:
    from ftassist.data.load import iter_lines

    wanted = sorted({issue.line for issue in issues})[:SAMPLE_LINES]
    last = wanted[-1]
    want = set(wanted)
    out = []
    for lineno, raw, _ in iter_lines(path):
        if lineno in want and raw is not None:
            out.append(raw.rstrip(b"\r"))
        if lineno >= last:
            break
    return out


def _python_literal(raw: bytes) -> object | None:
    """The value of a line written as a Python literal (single quotes, True/None), or None."""
    try:
        value = ast.literal_eval(raw.decode("utf-8").strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        return None
    return json_value(value) if isinstance(value, (dict, list)) else None


def _without_trailing_comma(raw: bytes) -> object | None:
    stripped = raw.rstrip()
    if not stripped.endswith(b","):
        return None
    try:
        return orjson.loads(stripped[:-1])
    except orjson.JSONDecodeError:
        return None


def _first_byte(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.lstrip()[:1]


def _stream_of_values(text: str) -> list[tuple[int, object]] | None:
    """(line, value) of each JSON value in a text of values one after another, or None if it is not one."""
    decoder = json.JSONDecoder()
    out = []
    pos, line, size = 0, 1, len(text)
    while True:
        start = pos
        while pos < size and text[pos] in " \t\r\n,":
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= size:
            return out
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return None
        out.append((line, value))
        line += text.count("\n", pos, end)
        pos = end


def _read_text(path: Path) -> str | None:
    if path.stat().st_size > MAX_WHOLE_FILE:
        return None
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _jsonl_diagnosis(path: Path, failed: list[Issue]) -> Diagnosis | None:
    lines = line_ranges(issue.line for issue in failed)
    count = len({issue.line for issue in failed})
    if _first_byte(path) == b"[":
        text = _read_text(path)
        fixable = False
        if text is not None:
            try:
                fixable = isinstance(orjson.loads(text.encode("utf-8")), list)
            except orjson.JSONDecodeError:
                fixable = False
        return Diagnosis("json_array_in_jsonl", "the file is one JSON array saved as .jsonl, not one object per line",
                         "rename it to .json, or write one object per line; Fix & split reads it as the array"
                         if fixable else "the array is not valid JSON either: fix it, or write one object per line",
                         lines, count, fixable)
    samples = _failing_lines(path, failed)
    kinds = Counter()
    for raw in samples:
        if not raw.strip():
            continue
        if _without_trailing_comma(raw) is not None:
            kinds["trailing_comma"] += 1
        elif _python_literal(raw) is not None:
            kinds["python_literals"] += 1
        else:
            kinds["other"] += 1
    common, n = kinds.most_common(1)[0] if kinds else ("other", 0)
    if common == "python_literals" and 2 * n >= len(samples):
        return Diagnosis("python_literals",
                         "the lines are Python literals (single quotes, True/None), not JSON: the file was written "
                         "with str() or print() instead of json.dumps",
                         "write each record with json.dumps(record); Fix & split converts them safely "
                         "(ast.literal_eval)", lines, count, True)
    if common == "trailing_comma" and 2 * n >= len(samples):
        return Diagnosis("trailing_comma", "each line ends with a comma after its JSON object",
                         "remove the comma at the end of each line; Fix & split removes it for you",
                         lines, count, True)
    text = _read_text(path)
    values = _stream_of_values(text) if text is not None else None
    spread = values and len(values) < sum(1 for line in text.splitlines() if line.strip())  # not one a line
    if spread and all(isinstance(value, dict) for _, value in values):
        return Diagnosis("pretty_printed_objects",
                         f"the file holds {len(values):,} pretty-printed JSON objects, each spread over many lines, "
                         "not one object per line",
                         "write each record on one line (json.dumps without indent); Fix & split reads them for you",
                         f"1-{values[-1][0]:,}", len(values), True)
    return None


def _json_diagnosis(path: Path, failed: list[Issue]) -> Diagnosis | None:
    lines = line_ranges(issue.line for issue in failed)
    count = len({issue.line for issue in failed})
    text = _read_text(path)
    if text is None:
        return None
    values = _stream_of_values(text)
    if values and len(values) > 1 and all(isinstance(value, dict) for _, value in values):
        return Diagnosis("pretty_printed_objects",
                         f"the file holds {len(values):,} pretty-printed JSON objects one after another, "
                         "not one JSON value",
                         "wrap them in [ ] with commas, or write one object per line (.jsonl); "
                         "Fix & split reads them for you", f"1-{values[-1][0]:,}", len(values), True)
    if values is None and _python_literal(text.encode("utf-8")) is not None:
        return Diagnosis("python_literals",
                         "the file is a Python literal (single quotes, True/None), not JSON: it was written with "
                         "str() or print() instead of json.dump",
                         "write it with json.dump(data, file); Fix & split converts it safely (ast.literal_eval)",
                         lines, count, True)
    return None


def csv_column_mapping(header: list[str]) -> dict[str, str] | None:
    """{column: instruction|output|system} when exactly one column reads as the prompt and one as the answer."""
    lowered = {name.strip().lower(): name for name in header}
    prompts = [lowered[n] for n in PROMPT_COLUMNS if n in lowered]
    answers = [lowered[n] for n in ANSWER_COLUMNS if n in lowered]
    if len(prompts) != 1 or len(answers) != 1:
        return None
    mapping = {prompts[0]: "instruction", answers[0]: "output"}
    if "system" in lowered:
        mapping[lowered["system"]] = "system"
    return mapping


def _csv_header(path: Path) -> list[str]:
    import csv

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        return [name.strip() for name in next(csv.reader(fh, delimiter=delimiter), [])]


def _csv_diagnosis(path: Path, failed: list[Issue]) -> Diagnosis | None:
    if Counter(issue.code for issue in failed).most_common(1)[0][0] not in ("missing_messages_list", "missing_field"):
        return None
    header = _csv_header(path)
    mapping = csv_column_mapping(header)
    found = ", ".join(header) or "none"
    fix = (f"Fix & split reads {' and '.join(f'{k} as {v}' for k, v in mapping.items())}" if mapping
           else "rename the columns to one of the expected sets")
    return Diagnosis("csv_columns", f"the CSV columns are named differently: found {found}; expected {EXPECTED_COLUMNS}",
                     f"rename the header; {fix}", line_ranges(issue.line for issue in failed),
                     len({issue.line for issue in failed}), mapping is not None)


# --------------------------------------------------------------------------- recovery


ENCODING_CODES = ("utf16_file", "legacy_encoding")


def recover_records(path: str | Path, diagnosis: Diagnosis, applied: list[Diagnosis] | None = None) -> Iterator[Record]:
    """The file's records read as the diagnosis says they were meant (only for a fixable one).

    With `applied` (a Fix), a fixable cause in the file's shape is fixed too after an encoding's fix
    (`structural_fix`), and appended to it; without (a check reading a UTF-16 file decoded), only the
    encoding is."""
    from ftassist.data.load import iter_lines, iter_records

    path = Path(path)
    code = diagnosis.code
    if not diagnosis.fixable:
        raise ValueError(f"the diagnosis {code} cannot be fixed automatically")
    if code in ENCODING_CODES:
        encoding = utf16_encoding(path) if code == "utf16_file" else legacy_encoding(path)
        with _utf8_copy(path, encoding or "latin-1") as copy:
            # a file can be both: Latin-1 and written with Python's str(), say; the copy shows the second cause
            shape = structural_fix(copy) if applied is not None else None
            if shape is not None:
                applied.append(shape)
            yield from recover_records(copy, shape) if shape is not None else iter_records(copy)
    elif code == "json_array_in_jsonl":
        yield from iter_records(path, kind="json")
    elif code == "pretty_printed_objects":
        for line, value in _stream_of_values(_read_text(path) or "") or []:
            yield Record(line=line, data=value)
    elif code == "python_literals" and _first_byte(path) in (b"[", b"{") and _is_json_file(path):
        whole = _python_literal((_read_text(path) or "").encode("utf-8"))
        for value in (whole if isinstance(whole, list) else [whole]):
            yield Record(line=1, data=value)
    elif code in ("python_literals", "trailing_comma"):
        repair = _python_literal if code == "python_literals" else _without_trailing_comma
        lines = iter_lines(path)
        current: tuple = (0, None, True)
        for record in iter_records(path):
            if record.problem is None:
                yield record
                continue
            while current[0] < record.line:
                current = next(lines, (float("inf"), None, True))
            raw = current[1] if current[0] == record.line else None
            value = repair(raw.rstrip(b"\r")) if raw is not None else None
            yield Record(line=record.line, data=value, raw_size=record.raw_size) if value is not None else record
    elif code == "csv_columns":
        mapping = csv_column_mapping(_csv_header(path)) or {}
        for record in iter_records(path):
            if record.problem is None and isinstance(record.data, dict):
                record.data = {mapping.get(key, key): value for key, value in record.data.items()}
            yield record
    else:
        raise ValueError(f"no recovery for {code}")


def _is_json_file(path: Path) -> bool:
    from ftassist.data.load import detect_file_type

    return detect_file_type(path) == "json"


def structural_fix(path: Path) -> Diagnosis | None:
    """The fixable cause in a UTF-8 file's shape (for a copy made by an encoding's fix)."""
    return next((cause for cause in _shape_causes(path) if cause.fixable), None)


def _shape_causes(path: Path) -> list[Diagnosis]:
    """The causes in a UTF-8 file's shape, found by reading it as a check would."""
    from ftassist.data.check import iter_examples
    from ftassist.data.load import iter_records

    errors: list[Issue] = []
    n_records = 0

    def counted(records: Iterable[Record]) -> Iterator[Record]:
        nonlocal n_records
        for record in records:
            n_records += 1
            yield record

    for _ in iter_examples(counted(iter_records(path)),
                           lambda issue: errors.append(issue) if issue.severity == "error" else None):
        pass
    return _structural(path, n_records, errors) if needs_diagnosis(n_records, errors) else []


@contextmanager
def _utf8_copy(path: Path, encoding: str) -> Iterator[Path]:
    """A UTF-8 copy of the file, in a temporary folder, under the same name (so its file type is the same)."""
    with tempfile.TemporaryDirectory(prefix="ftassist-recode-") as folder:
        copy = Path(folder) / path.name
        with open(path, encoding=encoding, errors="replace", newline="") as source, \
                open(copy, "w", encoding="utf-8", newline="") as out:
            first = True
            while chunk := source.read(2**20):
                out.write(chunk.removeprefix("\ufeff") if first else chunk)
                first = False
        yield copy


__all__ = ["diagnose", "group_issues", "line_ranges", "needs_diagnosis", "recover_records", "utf16_encoding"]
