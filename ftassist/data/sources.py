"""Several sources (files, Hub datasets) checked and cleaned as one dataset, each record keeping its file and line.

How: the sources are read one after the other into one *line space*: source k's line n is line
`offset_k + n`, where `offset_k` is where source k-1's last line ended. Every part of the check that keeps
lines (the validator's issues, the checklist's evidence, the token lists, the clean's dropped list) then
works unchanged on one stream, near-duplicates and the split's dedupe across files included, and lines
stay ordered by (source, line). At the end `LineSpace.translate` turns each line back into the source's
own: an issue gets its `source` and its own line, an evidence entry its `source`, and every "line N" said
in a message or note reads `name:line`.

What stays per source: the format (the mixed-format rule applies within a file, so two files in
different formats are fine), a UTF-16 file's decoding, the file-level diagnosis and Fix & split's
recovery of a file read the intended way. A file of preference pairs goes only with other files of
pairs (a refusal otherwise: they are trained differently).
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from .load import LoadError
from .report import DataReport, Issue, Record, SourceSummary

ProgressFn = Callable[[float, str], None]
_LINE = re.compile(r"\b([Ll]ine) (\d+)\b")


@dataclass
class Source:
    """One source as read: its name (what people see) and the file read for it."""

    name: str
    path: Path
    offset: int = 0  # its line n is line offset + n of the line space
    last_line: int = 0  # its largest line read
    n_records: int = 0
    utf16: str | None = None

    @property
    def file_size(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0


def source_names(given: Sequence[str]) -> list[str]:
    """The names a person knows the sources by: a file's name, a Hub id as given (`hf:org/name:subset@split`);
    the whole text for two files of the same name."""
    names = [text.strip() if _looks_hub(text) else Path(text.strip()).name for text in given]
    return [text.strip() if names.count(name) > 1 else name for name, text in zip(names, given)]


def _looks_hub(text: str) -> bool:
    text = text.strip()
    return text.startswith("hf:") or ("/" in text and not Path(text).suffix and not Path(text).expanduser().exists())


class LineSpace:
    """The sources' lines as one sequence, and back (see the module's docstring)."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)

    def records(self, index: int, records: Iterable[Record]) -> Iterator[Record]:
        """Source `index`'s records with their lines moved into the space. Read the sources in order: a source's
        offset is set when its first record is asked for, from the source before it (read again, e.g. with a
        fix, it starts over)."""
        source = self.sources[index]
        before = self.sources[index - 1] if index else None
        source.offset = before.offset + before.last_line if before is not None else 0
        source.last_line = source.n_records = 0
        offset = source.offset
        for record in records:
            source.n_records += 1
            problem = record.problem
            last = max(record.line, problem.line if problem is not None else 0)
            if last > source.last_line:
                source.last_line = last
            record.line += offset
            if problem is not None and problem.line > 0:
                problem.line += offset
            yield record

    def locate(self, line: int) -> tuple[Source | None, int]:
        """(source, its own line) of a line of the space; (None, line) for 0, the dataset as a whole."""
        if line <= 0:
            return None, line
        index = bisect_left([source.offset for source in self.sources], line) - 1
        source = self.sources[max(index, 0)]
        return source, line - source.offset

    def label(self, line: int) -> str:
        source, own = self.locate(line)
        return f"{source.name}:{own}" if source is not None else "file"

    def relabel(self, text: str) -> str:
        """Each "line N" of the space said in a text, as `name:line`."""
        if not text or "ine " not in text:
            return text
        return _LINE.sub(lambda m: self.label(int(m.group(2))) if int(m.group(2)) > 0 else m.group(0), text)

    # -- the report ---------------------------------------------------------------------------------------
    def translate(self, report: DataReport, formats: Sequence[str | None] = ()) -> DataReport:
        """A report made on the space, in the sources' own lines (see the module's docstring), with its
        `sources`, its diagnosis per source and its issues grouped per source."""
        from .diagnose import diagnose

        for issue in chain(report.errors, report.warnings):
            self._issue(issue)
        for item in report.checklist:
            item.summary = self.relabel(item.summary)
            for evidence in item.evidence:
                source, own = self.locate(int(evidence.get("line") or 0))
                if source is not None:
                    evidence["line"], evidence["source"] = own, source.name
                if evidence.get("note"):
                    evidence["note"] = self.relabel(str(evidence["note"]))
        tokens = report.tokens
        example_lines = list(tokens.lines) if tokens is not None else []
        if tokens is not None:
            tokens.lines = [self.locate(line)[1] for line in tokens.lines]
            tokens.over_limit = [self.locate(line)[1] for line in tokens.over_limit]
        if report.preference is not None:
            self._pairs(report)
        report.sources = []
        for index, source in enumerate(self.sources):
            first, last = source.offset + 1, source.offset + source.last_line
            n_examples = bisect_right(example_lines, last) - bisect_left(example_lines, first) if last >= first else 0
            own_format = formats[index] if index < len(formats) else report.format
            report.sources.append(SourceSummary(source.name, str(source.path), own_format, source.n_records,
                                                n_examples, source.file_size))
        report.diagnosis = []
        for source in self.sources:
            errors = [issue for issue in report.errors if issue.source == source.name]
            for cause in diagnose(source.path, source.n_records, errors):
                cause.source = source.name
                report.diagnosis.append(cause)
        report.error_groups = self.groups(report.errors)
        report.warning_groups = self.groups(report.warnings)
        return report

    def _issue(self, issue: Issue) -> None:
        if issue.line > 0:
            source, own = self.locate(issue.line)
            issue.line, issue.source = own, source.name
        issue.message = self.relabel(issue.message)
        issue.hint = self.relabel(issue.hint)

    def _pairs(self, report: DataReport) -> None:
        summary = report.preference
        summary.identical_lines = [self.label(line) for line in summary.identical_lines]
        summary.empty_lines = [self.label(line) for line in summary.empty_lines]
        summary.duplicate_lines = [[self.label(a), self.label(b)] for a, b in summary.duplicate_lines]
        summary.contradiction_lines = [[self.label(a), self.label(b)] for a, b in summary.contradiction_lines]

    def groups(self, issues: list[Issue]):
        """Identical issues grouped within each source (the dataset-wide ones first), in the sources' order."""
        from .diagnose import group_issues

        out = []
        for name in [None, *(source.name for source in self.sources)]:
            for group in group_issues(issue for issue in issues if issue.source == name):
                group.source = name
                out.append(group)
        return out


# -- the check --------------------------------------------------------------------------------------------
def _open(sources: list[Source]) -> list[Iterable[Record]]:
    """Each source's records (a UTF-16 file decoded); LoadError now, naming the source, when one cannot be read."""
    from .check import _utf16_records
    from .diagnose import utf16_encoding
    from .load import iter_records

    out = []
    for source in sources:
        try:
            source.utf16 = utf16_encoding(source.path) if source.file_size else None
            out.append(_utf16_records(source.path, source.utf16) if source.utf16 else iter_records(source.path))
        except LoadError as exc:
            raise LoadError(f"{source.name}: {exc}") from None
    return out


def _kinds(sources: list[Source], streams: list[Iterable[Record]]) -> tuple[bool, list[Iterable[Record]]]:
    """Whether the sources hold preference pairs (all of them) or examples (none); a refusal for a mix."""
    from .check import _is_preference, peek

    kinds, peeked = [], []
    for stream in streams:
        first, stream = peek(stream)
        kinds.append(_is_preference(first))
        peeked.append(stream)
    if any(kinds) and not all(kinds):
        pairs = [s.name for s, kind in zip(sources, kinds) if kind]
        chats = [s.name for s, kind in zip(sources, kinds) if not kind]
        raise LoadError(f"{', '.join(pairs)} hold{'s' if len(pairs) == 1 else ''} preference pairs and "
                        f"{', '.join(chats)} hold{'s' if len(chats) == 1 else ''} examples — preference pairs and "
                        "examples train differently: combine files of one kind, and check the others apart")
    return bool(kinds) and all(kinds), peeked


def check_sources(sources: Sequence[tuple[str, str | Path]], model: str | None = None, encoding: str | None = None,
                  context_limit: int | None = None, progress: ProgressFn | None = None, mapping=None) -> DataReport:
    """Check several sources as one dataset: (name, file) each. One source is `check.check_path`'s plain report.

    Raises `load.LoadError` (naming the source) when one cannot be read at all, or when files of preference
    pairs are combined with files of examples."""
    from .check import _check_pairs_file, _propose, _utf16_issue, check_path, check_streams
    from .mapping import Mapping
    from .tokens import encoding_name_for_model, open_model_counter

    if len(sources) == 1:
        return check_path(sources[0][1], model=model, encoding=encoding, context_limit=context_limit,
                          progress=progress, mapping=mapping)
    if not sources:
        raise LoadError("no dataset given — pass one or more files or Hugging Face dataset ids")
    started = time.perf_counter()
    mapping = Mapping.of(mapping)
    space = LineSpace([Source(name, Path(path)) for name, path in sources])
    streams = _open(space.sources)
    encoding_name = encoding or encoding_name_for_model(model)
    own = None if encoding else open_model_counter(model)
    if own is not None:
        encoding_name = own[0]
    pairs = False
    if mapping is None:
        pairs, streams = _kinds(space.sources, streams)
    streams = [space.records(i, stream) for i, stream in enumerate(streams)]
    file_size = sum(source.file_size for source in space.sources)
    label = " + ".join(source.name for source in space.sources)
    issues = [replace(_utf16_issue(s.utf16), source=s.name) for s in space.sources if s.utf16]
    formats: list[str | None] = []
    if pairs:
        report = _check_pairs_file(Path(label), chain.from_iterable(streams), model, encoding_name, own, encoding,
                                   context_limit, file_size, None, progress, started)
        report.errors[:0] = issues
        report.error_counts = _counts(report.errors)
        formats = [report.preference.format] * len(space.sources)
    else:
        report = check_streams(streams, label, file_size, model, encoding, encoding_name, own, context_limit,
                               progress, mapping, issues, formats)
    space.translate(report, formats)
    if not pairs and report.n_records and (mapping is not None or report.format is None):
        unmapped = next((i for i, f in enumerate(formats) if f is None), 0)
        _propose(report, _open([replace(space.sources[unmapped])])[0], mapping is None)
    report.seconds = round(time.perf_counter() - started, 3)
    if progress:
        progress(1.0, "done")
    return report


def _counts(errors: list[Issue]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for issue in errors:
        counts[issue.code] = counts.get(issue.code, 0) + 1
    return dict(sorted(counts.items()))


# -- Fix & split ------------------------------------------------------------------------------------------
def clean_sources(sources: Sequence[tuple[str, str | Path]], out_dir: str | Path, *, valid_fraction: float = 0.1,
                  seed: int = 42, dedupe: bool = True, fill: dict[str, str] | None = None, mapping=None,
                  test_fraction: float | None = 0.0):
    """Fix & split several sources into one train/validation split: duplicates dropped across them, each
    dropped record listed with its `source` and own line. One source is `clean.clean_file`'s.

    Each source is read as `clean_file` reads a file (a UTF-16 file decoded, a file-level fix applied when the
    diagnosis names one); files of preference pairs are split as pairs, together."""
    from . import clean as cleaning
    from .check import iter_examples
    from .diagnose import diagnose, recover_records
    from .mapping import Mapping
    from .report import Diagnosis

    if len(sources) == 1:
        return cleaning.clean_file(sources[0][1], out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe,
                                   fill=fill, mapping=mapping, test_fraction=test_fraction)
    if not sources:
        raise LoadError("no dataset given — pass one or more files or Hugging Face dataset ids")
    mapping = Mapping.of(mapping)
    space = LineSpace([Source(name, Path(path)) for name, path in sources])
    streams = _open(space.sources)
    if mapping is None:
        pairs, streams = _kinds(space.sources, streams)
        if pairs:
            records = chain.from_iterable(space.records(i, stream) for i, stream in enumerate(streams))
            try:
                result = cleaning.clean_pairs_file(records, out_dir, valid_fraction=valid_fraction, seed=seed,
                                                   dedupe=dedupe, fill=fill, test_fraction=test_fraction)
            except cleaning.NothingToKeep as exc:
                raise cleaning.NothingToKeep(space.relabel(str(exc))) from None
            _relabel_dropped(space, result.dropped_path)
            return result

    examples: list = []
    invalid: dict[int, list[str]] = {}
    repaired: list[str] = []
    n_recovered = 0
    for index, (source, stream) in enumerate(zip(space.sources, streams)):
        found_invalid: dict[int, list[str]] = {}
        errors: list[Issue] = []

        def drop(issue: Issue, found_invalid=found_invalid, errors=errors) -> None:
            if issue.severity == "error":
                found_invalid.setdefault(issue.line, []).append(issue.code)
                errors.append(issue)

        found = list(iter_examples(space.records(index, stream), drop, mapping))
        fix = Diagnosis("utf16_file", f"decoded from {source.utf16.upper()}", "", "file", 0, True) \
            if source.utf16 else None
        if fix is None:
            own_errors = [replace(issue, line=issue.line - source.offset) if issue.line > 0 else issue
                          for issue in errors]
            fix = next((d for d in diagnose(source.path, source.n_records, own_errors) if d.fixable), None)
            if fix is not None:  # read again, the intended way
                n_before = len(found)
                found_invalid.clear()
                found = list(iter_examples(space.records(index, recover_records(source.path, fix)), drop, mapping))
                n_recovered += max(0, len(found) - n_before)
        if fix is not None:
            repaired.append(f"{source.name}: {fix.message}")
        examples.extend(found)
        invalid.update(found_invalid)
    try:
        result = cleaning.clean_and_split(examples, invalid, out_dir, valid_fraction=valid_fraction, seed=seed,
                                          dedupe=dedupe, fill=fill, test_fraction=test_fraction)
    except cleaning.NothingToKeep as exc:
        raise cleaning.NothingToKeep(space.relabel(str(exc))) from None
    result.n_recovered, result.repaired = n_recovered, "; ".join(repaired)
    _relabel_dropped(space, result.dropped_path)
    return result


def _relabel_dropped(space: LineSpace, path: Path) -> None:
    """dropped.jsonl in the sources' own lines: each row gets its `source`, and a duplicate names the
    first as `name:line`."""
    import orjson

    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    with open(path, "wb") as out:
        for row in rows:
            source, own = space.locate(int(row.get("line") or 0))
            if source is not None:
                row = {"source": source.name, **row, "line": own}
            if row.get("detail"):
                row["detail"] = space.relabel(str(row["detail"]))
            if isinstance(row.get("duplicate_of"), int):
                row["duplicate_of"] = space.label(row["duplicate_of"])
            out.write(orjson.dumps(row) + b"\n")


__all__ = ["LineSpace", "Source", "check_sources", "clean_sources", "source_names"]
