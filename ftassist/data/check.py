"""The whole Data check in one streaming pass: file -> records -> examples -> DataReport.

One pass, bounded memory: records are read one at a time; valid examples are gathered
in small chunks, their exact token counts are computed for the chunk at once (batched
tokenisation is where the time goes), and each example is then handed to the checklist
accumulators and dropped. What is kept for the whole file is small per example: its
line, its token counts, and the hashes the checklist keeps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from .report import DataReport, Example, Issue

ProgressFn = Callable[[float, str], None]

CHUNK = 2048  # examples tokenised together


def _format_mismatch(line: int, fmt: str, file_fmt: str, first_line: int) -> Issue:
    return Issue(
        line=line,
        code="mixed_formats",
        message=f"this record is in {fmt} format, but the file is in {file_fmt} format (from line {first_line})",
        hint=f"convert this record to the {file_fmt} format, or split the file so each holds one format",
    )


def check_path(
    path: str | Path,
    model: str | None = None,
    encoding: str | None = None,
    context_limit: int | None = None,
    progress: ProgressFn | None = None,
) -> DataReport:
    """Check one dataset file. Raises `load.LoadError` only when the file cannot be read at all."""
    from .checklist import ChecklistBuilder
    from .formats import detect_format, extra_fields, to_chat
    from .load import iter_records
    from .tokens import count_chats, encoding_name_for_model, get_encoding, summarize
    from .validate import context_warnings, validate_dataset_size, validate_record

    started = time.perf_counter()
    path = Path(path)
    file_size = os.path.getsize(path) if path.is_file() else 0
    encoding_name = encoding or encoding_name_for_model(model)
    enc = get_encoding(encoding_name)

    report = DataReport(path=str(path), n_records=0, n_examples=0, format=None, model=model, file_size=file_size)
    error_counts: dict[str, int] = {}
    checklist = ChecklistBuilder(context_limit=context_limit)
    per_example: list[int] = []
    assistant_per_example: list[int] = []
    lines: list[int] = []
    file_format: str | None = None
    first_format_line = 0
    pending: list[Example] = []
    bytes_seen = 0
    next_progress = 0.0

    def flush() -> None:
        if not pending:
            return
        counts = count_chats([ex.chat for ex in pending], enc)
        for ex, (total, assistant) in zip(pending, counts):
            per_example.append(total)
            assistant_per_example.append(assistant)
            lines.append(ex.line)
            checklist.add(ex, total, assistant)
        pending.clear()

    def record_issue(issue: Issue) -> None:
        if issue.severity == "error":
            report.errors.append(issue)
            error_counts[issue.code] = error_counts.get(issue.code, 0) + 1
        else:
            report.warnings.append(issue)

    for rec in iter_records(path):
        report.n_records += 1
        bytes_seen += rec.raw_size
        fmt = detect_format(rec.data) if rec.problem is None else None
        issues = validate_record(rec, fmt)
        has_error = False
        for issue in issues:
            record_issue(issue)
            has_error = has_error or issue.severity == "error"
        if fmt is not None and not has_error:
            if file_format is None:
                file_format, first_format_line = fmt, rec.line
            elif fmt != file_format:
                record_issue(_format_mismatch(rec.line, fmt, file_format, first_format_line))
                has_error = True
        if has_error:
            continue
        try:
            chat = to_chat(rec.data, fmt)
        except (ValueError, TypeError, KeyError) as exc:  # a converter bug must not drop the other records
            record_issue(Issue(rec.line, "conversion_failed", f"could not convert this record: {exc}",
                               "check the record's fields against the format's documentation"))
            continue
        pending.append(Example(rec.line, chat, fmt, extra_fields(rec.data, fmt), tuple(sorted(rec.data))))
        if len(pending) >= CHUNK:
            flush()
            if progress and file_size:
                fraction = min(bytes_seen / file_size, 1.0)
                if fraction >= next_progress:
                    progress(fraction, f"checked {report.n_records:,} records")
                    next_progress = fraction + 0.02
    flush()

    report.n_examples = len(per_example)
    report.format = file_format
    if report.n_records == 0:
        record_issue(Issue(0, "empty_file", "the file holds no records",
                           "upload a file with one example per line (JSONL) or a JSON array of examples"))
    else:
        for issue in validate_dataset_size(report.n_examples, file_size):
            record_issue(issue)
    if context_limit:
        for issue in context_warnings(lines, per_example, context_limit, model or encoding_name):
            record_issue(issue)

    from .report import TokenStats

    report.tokens = TokenStats(
        encoding=encoding_name,
        exact=True,
        per_example=per_example,
        assistant_per_example=assistant_per_example,
        lines=lines,
        total=sum(per_example),
        assistant_total=sum(assistant_per_example),
        stats={"total": summarize(per_example), "assistant": summarize(assistant_per_example)},
        over_limit=[ln for ln, t in zip(lines, per_example) if context_limit and t > context_limit],
        limit=context_limit,
    )
    report.checklist = checklist.finish()
    report.error_counts = dict(sorted(error_counts.items()))
    report.seconds = round(time.perf_counter() - started, 3)
    if progress:
        progress(1.0, "done")
    return report
