"""The whole Data check in one streaming pass: file -> records -> examples -> DataReport.

One pass, bounded memory: records are read one at a time; valid examples are gathered
in chunks whose exact token counts are computed together (on a big file, in a second
process while this one parses and scores the next chunk: counting is most of the CPU
time); each chunk goes through the checklist accumulators and is dropped. What is kept
for the whole file is small per example: its line, its token counts, and the hashes the
checklist keeps.
"""

from __future__ import annotations

import gc
import os
import time
from array import array
from collections import deque
from itertools import chain
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .report import DataReport, Example, Issue, Record, TokenStats

ProgressFn = Callable[[float, str], None]

CHUNK = 2048  # examples counted together
CHUNK_BYTES = 2**19  # ... or fewer, when they are long: a chunk's texts are held (and sent to the worker) at once;
# up to max_pending chunks are in flight on both sides, so 4 MB made long chats' peak ~35 MB higher, and 1 MB ~5 MB
# higher than this half (bench_check)
CHECKLIST_BATCH = 512  # examples the checklist takes at once: its temporaries are a few copies of their texts
BACKGROUND_COUNT_BYTES = 8 * 2**20  # from this file size on, tokens are counted in a second process


def _format_mismatch(line: int, record_format: str, file_format: str, first_line: int) -> Issue:
    return Issue(
        line=line,
        code="mixed_formats",
        message=f"this record is in {record_format} format, but the file is in {file_format} format "
                f"(from line {first_line})",
        hint=f"convert this record to the {file_format} format, or split the file so each holds one format",
    )


class _Accumulator:
    """What a check keeps while it streams: issues, per-example token counts, the checklist.

    Examples wait in the current chunk; a full chunk goes to the token counter first (so
    the worker starts on it at once), then to the checklist (`add_many`), and is dropped.
    With a worker, the checklist's work is shared, chunk by chunk, with whichever process has
    time: a chunk hands its near-duplicate word hashing to the worker when the worker has
    caught up (backlog <= WORDS_TO_WORKER_BACKLOG). On short examples (a chunk full by count,
    not by bytes: their tokens are quick to count, and the per-example work here is what bounds
    the check), a share of the chunks hands over all of its checklist work too: the share grows
    while the worker reports waiting for chunks, and shrinks while it falls behind. The worker
    returns that work as a checklist part, merged here in example order; a chunk judged here
    while an earlier one is still out goes into a part of its own, to wait its turn. Keys and
    hashes are the same whoever computes them (`textkeys`), so the report does not depend on who
    did what.
    """

    WORDS_TO_WORKER_BACKLOG = 2
    CHECKLIST_SHARE_BOUNDS = (0.0, 1.0)  # of the chunks the worker judges (tests pin it)
    CHECKLIST_SHARE_STEP = 0.05
    WORKER_IDLE_SECONDS = 0.0005  # a worker that waited longer than this for a chunk has time to spare

    def __init__(self, report: DataReport, checklist, counter, file_size: int = 0) -> None:
        self.report = report
        self.file_size = file_size
        self.bytes_seen = 0  # of the file, by the records read so far
        self.checklist = checklist
        self.counter = counter  # BackgroundChatCounter, or None to count in this process
        self.own_counter = None  # an open model's own tokenizer (`tokens.open_model_counter`), or tiktoken
        self.error_counts: dict[str, int] = {}
        # 32-bit arrays, not lists: 4 bytes an example instead of ~36 for a list of ints
        self.per_example = array("i")
        self.assistant_per_example = array("i")
        self.lines = array("i")
        self.vision_lines: list[int] = []  # examples with an image part
        self.pending: list[Example] = []
        self.start = 0  # index of the chunk's first example
        self.chunk_bytes_start = 0  # bytes_seen when the current chunk began
        # this process hashes the current chunk's near-duplicate words; not while the worker starts: the
        # MinHash of words hashed here would import numpy (~15 MB) at the moment the worker's memory peaks
        self.words_here = counter is None
        self.checklist_there = False  # the worker judges the current chunk for the checklist
        low, high = self.CHECKLIST_SHARE_BOUNDS
        self.checklist_share = min(max(0.5, low), high)
        self.checklist_credit = 0.0  # the share, accumulated: a chunk goes when it reaches 1
        self.parts: deque[list] = deque()  # [first example, checklist part or None while out], in order

    def issue(self, issue: Issue) -> None:
        if issue.severity == "error":
            self.report.errors.append(issue)
            self.error_counts[issue.code] = self.error_counts.get(issue.code, 0) + 1
        else:
            self.report.warnings.append(issue)

    def example(self, example: Example) -> None:
        self.lines.append(example.line)
        self.pending.append(example)
        if len(self.pending) >= CHUNK or self.bytes_seen - self.chunk_bytes_start >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        chunk, self.pending = self.pending, []
        self.chunk_bytes_start = self.bytes_seen
        if not chunk:
            return
        start, self.start = self.start, self.start + len(chunk)
        chats = [example.chat for example in chunk]
        counter = self.counter
        request = self._request(chunk, start) if counter is not None and self.checklist_there else None
        words_here = counter is None or self.words_here
        # the worker starts at once; a chunk it judges comes back with its near-duplicate signatures in the part
        done = counter.submit(chats, start, words=not words_here and request is None, checklist=request) \
            if counter else []
        self._judge(chunk, start, request is not None, words_here)
        if counter is None:
            for total, assistant in self._count_here(chats):
                self.per_example.append(total)
                self.assistant_per_example.append(assistant)
            return
        for counted in done:
            self._take(counted)
        self._merge_parts()
        near_end = self._near_end()
        backlog = counter.backlog
        self.words_here = counter.started and (backlog > self.WORDS_TO_WORKER_BACKLOG or near_end)
        # not before the worker is started (its memory peaks then), nor near the end (see `_near_end`)
        self.checklist_there = (counter.started and not counter.in_process and not near_end
                                and len(chunk) >= CHUNK // 2 and self._share_next(done, backlog))

    def _judge(self, chunk: list[Example], start: int, there: bool, words_here: bool) -> None:
        """The chunk into the checklist, its formats here in any case: the rest judged in the worker (`there`: a part
        to come), in a part of its own while an earlier chunk is still out, or else straight in the builder."""
        checklist = self.checklist
        if not there and not self.parts:
            for i in range(0, len(chunk), CHECKLIST_BATCH):
                checklist.add_many(chunk[i:i + CHECKLIST_BATCH], words=words_here)
            return
        checklist.add_formats(chunk)
        part = None
        if not there:
            part = checklist.part(start)
            for i in range(0, len(chunk), CHECKLIST_BATCH):
                part.add_many(chunk[i:i + CHECKLIST_BATCH], words=words_here, formats=False)
        self.parts.append([start, part])

    def _share_next(self, done: list, backlog: int) -> bool:
        """Whether the worker judges the next chunk: the share follows who waits for whom."""
        low, high = self.CHECKLIST_SHARE_BOUNDS
        share = self.checklist_share
        share += self.CHECKLIST_SHARE_STEP * sum(counted.waited > self.WORKER_IDLE_SECONDS for counted in done)
        if backlog >= self.counter.max_pending:  # the next chunk would wait for the worker
            share -= self.CHECKLIST_SHARE_STEP
        self.checklist_share = share = min(max(share, low), high)
        self.checklist_credit += share
        if self.checklist_credit < 1:
            return False
        self.checklist_credit -= 1
        return True

    def _request(self, chunk: list[Example], start: int):
        from .checklist import LABEL_KEYS
        from .token_worker import ChecklistRequest

        labels = {index: {key: example.extra[key] for key in LABEL_KEYS if key in example.extra}
                  for index, example in enumerate(chunk) if example.extra}
        return ChecklistRequest(start, self.lines[start:start + len(chunk)].tobytes(), labels,
                                self.checklist.max_evidence, CHECKLIST_BATCH)

    def _merge_parts(self) -> None:
        """The parts at the head of the queue that are ready, merged in order."""
        parts = self.parts
        while parts and parts[0][1] is not None:
            self.checklist.merge(parts.popleft()[1])

    def _count_here(self, chats: list) -> list[tuple[int, int]]:
        from .tokens import count_chats

        if self.own_counter is None:
            return count_chats(chats, self.report.tokens.encoding)
        counts, exact = self.own_counter(chats)
        self.report.tokens.exact = self.report.tokens.exact and exact
        return counts

    def _near_end(self) -> bool:
        """Whether the rest of the file fits in the chunks the worker may hold.

        Those chunks keep their words here: then, once the file is read, every word hash is
        in, and the checklist is judged (`prepare`) while the worker counts the last chunks.
        """
        records_read = self.report.n_records
        if not records_read or not self.bytes_seen:
            return False
        records_left = (self.file_size - self.bytes_seen) * records_read / self.bytes_seen
        return records_left <= CHUNK * self.counter.max_pending

    def drain(self) -> None:
        self.flush()
        if self.counter is not None:
            if not self.counter.words_in_flight and not self.parts:
                self.checklist.prepare()  # while the worker counts the last chunks
            for counted in self.counter.drain():
                self._take(counted)
            self._merge_parts()
        self.checklist.set_tokens(self.per_example, self.assistant_per_example)

    def _take(self, counted) -> None:
        self.per_example.extend(counted.totals)
        self.assistant_per_example.extend(counted.assistants)
        if counted.words is not None:
            self.checklist.add_words(counted.payload, *counted.words)
        if counted.checklist is not None:
            for entry in self.parts:
                if entry[0] == counted.payload:
                    entry[1] = counted.checklist
                    break


def check_path(
    path: str | Path,
    model: str | None = None,
    encoding: str | None = None,
    context_limit: int | None = None,
    progress: ProgressFn | None = None,
    mapping=None,
) -> DataReport:
    """Check one dataset file. Raises `load.LoadError` only when the file cannot be read at all.

    `mapping` (a `mapping.Mapping`, its dict or `--map` text) turns records in no known format into
    records in one before they are judged; without it, a file in no known format gets a proposed mapping."""
    from .mapping import Mapping
    from .diagnose import utf16_encoding
    from .load import iter_records
    from .tokens import encoding_name_for_model, open_model_counter

    started = time.perf_counter()
    mapping = Mapping.of(mapping)  # MappingError (a ValueError) before any work when it cannot be used
    path = Path(path)
    file_size = os.path.getsize(path) if path.is_file() else 0
    encoding_name = encoding or encoding_name_for_model(model)
    own = None if encoding else open_model_counter(model)  # an open model's tokenizer counts in this process
    if own is not None:
        encoding_name = own[0]
    utf16 = utf16_encoding(path) if file_size else None
    if utf16:  # read it decoded, so the report says what is in it; the file-level error says what to fix
        records = _utf16_records(path, utf16)
    else:
        records = iter_records(path)  # raises LoadError now for a missing, binary or unsupported file
    if mapping is None:
        first, records = peek(records)
        if _is_preference(first):
            return _check_pairs_file(path, records, model, encoding_name, own, encoding, context_limit, file_size,
                                     utf16, progress, started)
    elif mapping.pairs:
        report = _check_pairs_file(path, records, model, encoding_name, own, encoding, context_limit, file_size,
                                   utf16, progress, started, mapping)
        _propose(report, _utf16_records(path, utf16) if utf16 else iter_records(path), False)
        return report
    issues = [_utf16_issue(utf16)] if utf16 else []
    report = check_streams([records], str(path), file_size, model, encoding, encoding_name, own, context_limit,
                           progress, mapping, issues)
    _diagnose(report, path)
    if report.n_records and (mapping is not None or report.format is None):
        _propose(report, _utf16_records(path, utf16) if utf16 else iter_records(path), mapping is None)
    report.seconds = round(time.perf_counter() - started, 3)
    if progress:
        progress(1.0, "done")
    return report


def _utf16_issue(utf16: str) -> Issue:
    return Issue(0, "utf16_file", f"the file is {utf16.upper()} encoded, not UTF-8",
                 "save it as UTF-8 (e.g. `iconv -f utf-16 -t utf-8`); Fix & split converts it")


def check_streams(streams: Iterable[Iterable[Record]], path: str, file_size: int, model: str | None,
                  encoding: str | None, encoding_name: str, own, context_limit: int | None,
                  progress: ProgressFn | None, mapping=None, issues: Iterable[Issue] = (),
                  formats: list | None = None) -> DataReport:
    """The chat check of one or more streams of records, in one pass: a stream is one source (a file), so
    the mixed-format rule applies within each (`iter_examples` per stream); the checklist and the token
    counts span them all. `formats`, when given, gets each stream's own format (None: no valid example).
    The file-level diagnosis and the proposed mapping are the caller's (they read a file again)."""
    from .token_worker import BackgroundChatCounter
    from .tokens import tiktoken_exact

    # the worker starts first: its start-up (loading the encoding) overlaps the imports below
    counter = BackgroundChatCounter(encoding_name) if own is None and file_size >= BACKGROUND_COUNT_BYTES else None
    gc_was_enabled = gc.isenabled()
    try:
        from .checklist import ChecklistBuilder

        report = DataReport(path=path, n_records=0, n_examples=0, format=None, model=model,
                            file_size=file_size, mapping=mapping.to_dict() if mapping else None)
        # o200k counts for an open model whose tokenizer is not here: approximate, and said so
        report.tokens = TokenStats(encoding=encoding_name, exact=own is not None or tiktoken_exact(model, encoding),
                                   limit=context_limit)
        # the builder is referenced by the accumulator alone: `_finish` lets it go early
        accumulator = _Accumulator(report, ChecklistBuilder(context_limit=context_limit, tokens_later=True),
                                   counter, file_size)
        accumulator.own_counter = own[1] if own is not None else None
        # the scan makes millions of short-lived objects and no reference cycles: the cyclic
        # collector would only walk the growing per-example arrays again and again
        gc.disable()
        for issue in issues:
            accumulator.issue(issue)
        _scan(streams, report, accumulator, progress, mapping, formats)
        accumulator.drain()
    finally:
        if gc_was_enabled:
            gc.enable()
        if counter is not None:
            counter.close()

    _finish(report, accumulator, file_size, context_limit, model or encoding_name)
    return report


PEEK_RECORDS = 50  # records looked at to tell a file of preference pairs from the others


def peek(records: Iterable[Record]) -> tuple[object, Iterator[Record]]:
    """The first parsed record's data (None when none of the first PEEK_RECORDS parsed into an object),
    and the records again, from the first: what tells pairs from chats, at the cost of one record read."""
    records = iter(records)
    head: list[Record] = []
    first = None
    for record in records:
        head.append(record)
        if record.problem is None and isinstance(record.data, dict):
            first = record.data
            break
        if len(head) >= PEEK_RECORDS:
            break
    return first, chain(head, records)


def _is_preference(data: object) -> bool:
    """`preferences.is_preference` without importing it for the chat files that are most checks."""
    return isinstance(data, dict) and (("chosen" in data and "rejected" in data) or "preferred_output" in data
                                       or "non_preferred_output" in data)


def _check_pairs_file(path: Path, records: Iterable[Record], model: str | None, encoding_name: str, own,
                      encoding: str | None, context_limit: int | None, file_size: int, utf16: str | None,
                      progress: ProgressFn | None, started: float, mapping=None) -> DataReport:
    """The check of a file of preference pairs: each pair validated and converted (`preferences.iter_pairs`),
    judged by the pair checks, its two conversations counted; the chosen conversations go through the chat
    checklist items that still mean something for pairs (`checklist.preference_checklist`), and the rejected
    answers through its secrets scan too. `mapping` (a pair mapping) makes the pairs of records under other
    names."""
    from .checklist import ChecklistBuilder, preference_checklist
    from .preferences import PairChecks, chats_of, describe, iter_pairs
    from .report import PreferenceSummary
    from .textkeys import text_of
    from .tokens import summarize, tiktoken_exact
    from .validate import context_warnings, validate_dataset_size

    report = DataReport(path=str(path), n_records=0, n_examples=0, format="preference", model=model,
                        file_size=file_size, mapping=mapping.to_dict() if mapping is not None else None)
    report.tokens = TokenStats(encoding=encoding_name, exact=own is not None or tiktoken_exact(model, encoding),
                               limit=context_limit)
    accumulator = _Accumulator(report, None, None, file_size)
    accumulator.own_counter = own[1] if own is not None else None
    if utf16:
        accumulator.issue(_utf16_issue(utf16))
    checks = PairChecks()
    builder = ChecklistBuilder(context_limit=context_limit)
    per_pair, assistant_per_pair, longest, lines = array("i"), array("i"), array("i"), array("i")
    chunk: list = []
    summary: PreferenceSummary | None = None

    def flush() -> None:
        chats = [chat for pair in chunk for chat in chats_of(pair.pair)]
        counts = accumulator._count_here(chats)
        builder.add_many([Example(pair.line, chats[2 * i], "preference") for i, pair in enumerate(chunk)],
                         [counts[2 * i][0] for i in range(len(chunk))], [counts[2 * i][1] for i in range(len(chunk))])
        for pair in chunk:  # the rejected side is trained on too: its secrets count (the prompt is scanned above)
            rejected = "\n".join(text_of(message.get("content")) for message in pair.pair["rejected"])
            builder.scan_sensitive(pair.line, rejected, "rejected answer")
        for i, pair in enumerate(chunk):
            (chosen_total, chosen_answer), (rejected_total, rejected_answer) = counts[2 * i], counts[2 * i + 1]
            per_pair.append(chosen_total + rejected_total)
            assistant_per_pair.append(chosen_answer + rejected_answer)
            longest.append(max(chosen_total, rejected_total))
            lines.append(pair.line)
        chunk.clear()

    source = _counted(records, report, accumulator, progress)
    if mapping is not None:
        from .mapping import map_records

        source = map_records(source, mapping, accumulator.issue)
    for pair in iter_pairs(source, accumulator.issue):
        if summary is None:
            summary = PreferenceSummary(pair.source_format, describe(pair.source_format, pair.style, pair.prompt_kind),
                                        style=pair.style, prompt=pair.prompt_kind)
        for warning in checks.add(pair.line, pair.pair):
            accumulator.issue(warning)
        chunk.append(pair)
        if len(chunk) >= CHECKLIST_BATCH:
            flush()
    if chunk:
        flush()

    report.n_examples = checks.n
    for issue in validate_dataset_size(checks.n, file_size):
        if issue.code == "too_few_examples":
            issue.message = issue.message.replace("valid example", "valid pair")
        accumulator.issue(issue)
    if context_limit:
        for issue in context_warnings(lines.tolist(), longest.tolist(), context_limit, model or encoding_name):
            issue.message = issue.message.replace("The example has", "A side of this pair has")
            accumulator.issue(issue)
    tokens = report.tokens
    tokens.per_example, tokens.assistant_per_example, tokens.lines = (
        per_pair.tolist(), assistant_per_pair.tolist(), lines.tolist())
    tokens.total, tokens.assistant_total = sum(per_pair), sum(assistant_per_pair)
    tokens.stats = {"total": summarize(per_pair), "assistant": summarize(assistant_per_pair)}
    tokens.over_limit = [line for line, n in zip(lines, longest) if context_limit and n > context_limit]
    report.checklist = preference_checklist(builder.finish(), checks.finish())
    if summary is None:
        summary = PreferenceSummary("unknown", "preference pairs (none valid)")
    summary.n_pairs = checks.n
    for key, value in checks.summary().items():
        setattr(summary, key, value)
    report.preference = summary
    report.error_counts = dict(sorted(accumulator.error_counts.items()))
    _diagnose(report, path)
    report.seconds = round(time.perf_counter() - started, 3)
    if progress:
        progress(1.0, "done")
    return report


def count_pairs_tokens(records: Iterable[Record], encoding_name: str, counted) -> TokenStats | None:
    """A file of pairs' token counts (per pair: prompt + chosen and prompt + rejected), or None when the
    file is not one of pairs. `counted(chats)` counts canonical chats."""
    from .preferences import chats_of, iter_pairs
    from .tokens import summarize

    first, records = peek(records)
    if not _is_preference(first):
        return None
    stats = TokenStats(encoding=encoding_name, exact=True)
    pairs = list(iter_pairs(records, lambda issue: None))
    for start in range(0, len(pairs), CHUNK):
        batch = pairs[start:start + CHUNK]
        counts = counted([chat for pair in batch for chat in chats_of(pair.pair)])
        for i, pair in enumerate(batch):
            stats.per_example.append(counts[2 * i][0] + counts[2 * i + 1][0])
            stats.assistant_per_example.append(counts[2 * i][1] + counts[2 * i + 1][1])
            stats.lines.append(pair.line)
    stats.total, stats.assistant_total = sum(stats.per_example), sum(stats.assistant_per_example)
    stats.stats = {"total": summarize(stats.per_example), "assistant": summarize(stats.assistant_per_example)}
    return stats


def _utf16_records(path: Path, encoding: str) -> Iterator[Record]:
    from .diagnose import recover_records
    from .report import Diagnosis

    return recover_records(path, Diagnosis("utf16_file", "", "", "file", 0, fixable=True))


def _diagnose(report: DataReport, path: Path) -> None:
    """The file-level causes said once, and the issues grouped: both from the errors already collected."""
    from .diagnose import diagnose, group_issues

    report.diagnosis = diagnose(path, report.n_records, report.errors)
    report.error_groups = group_issues(report.errors)
    report.warning_groups = group_issues(report.warnings)


def _propose(report: DataReport, records: Iterable[Record], propose: bool) -> None:
    """The key paths the records hold (what a mapping can name); for a file in no known format and not mapped
    (`propose`), the mapping those keys point at, and a file-level hint naming the flag."""
    from itertools import islice

    from .mapping import SAMPLE_RECORDS, key_paths, propose_mapping
    from .report import Diagnosis

    sample = [record.data for record in islice(records, SAMPLE_RECORDS) if record.problem is None]
    report.found_keys = list(key_paths(sample))
    proposal = propose_mapping(sample) if propose else None
    if proposal is None:
        return
    report.proposed_mapping = proposal.to_dict()
    flag = f"--map {proposal.text()}"
    for cause in report.diagnosis:
        if cause.code == "csv_columns":  # the columns' cause is said once: it names the flag too
            cause.hint += f"; or check again with `{flag}`"
            return
    report.diagnosis.insert(0, Diagnosis(
        "unmapped_fields", "the records are in no known format, but their keys look like "
        f"{', '.join(f'{role} = {path}' for role, path in proposal.to_dict().items())}",
        f"check again with `{flag}` (or pick the fields in the Data tab); "
        "`ftassist clean --map ...` then writes them in a known format", "file", report.n_records))


def count_tokens(path: str | Path, model: str | None = None, encoding: str | None = None) -> TokenStats:
    """Token counts of a file's valid examples, without the checklist: exact, with an open model's own
    tokenizer when it loads offline, else approximate (o200k, `exact=False`).

    For a file whose records were already judged (a split's train file): the Estimate needs
    only its counts. Raises `load.LoadError` when the file cannot be read at all.
    """
    from .load import iter_records
    from .tokens import count_chats, encoding_name_for_model, open_model_counter, summarize, tiktoken_exact

    name = encoding or encoding_name_for_model(model)
    own = None if encoding else open_model_counter(model)
    stats = TokenStats(encoding=own[0] if own else name, exact=own is not None or tiktoken_exact(model, encoding))
    chunk: list[Example] = []

    def counted(chats: list[dict]) -> list[tuple[int, int]]:
        if own is None:
            return count_chats(chats, name)
        counts, exact = own[1](chats)
        stats.exact = stats.exact and exact
        return counts

    def count(examples: list[Example]) -> None:
        for ex, (total, assistant) in zip(examples, counted([ex.chat for ex in examples])):
            stats.per_example.append(total)
            stats.assistant_per_example.append(assistant)
            stats.lines.append(ex.line)

    pairs = count_pairs_tokens(iter_records(path), stats.encoding, counted)
    if pairs is not None:  # a split of preference pairs: what DPO trains on is both conversations of each
        pairs.exact = stats.exact
        return pairs
    for ex in iter_examples(iter_records(path), lambda issue: None):
        chunk.append(ex)
        if len(chunk) >= CHUNK:
            count(chunk)
            chunk = []
    count(chunk)
    stats.total = sum(stats.per_example)
    stats.assistant_total = sum(stats.assistant_per_example)
    stats.stats = {"total": summarize(stats.per_example), "assistant": summarize(stats.assistant_per_example)}
    return stats


def iter_examples(records: Iterable[Record], on_issue: Callable[[Issue], None], mapping=None) -> Iterator[Example]:
    """The valid records as canonical examples, in file order; every problem goes to `on_issue`.

    With a `mapping.Mapping`, each record is mapped first (one record may give several examples, each
    with the record's line).

    One place decides what a valid example is, for the check and for clean/split alike: no
    error from the validator, a detected format equal to the file's (the first valid record's:
    others are `mixed_formats`), and a conversion to canonical chat that succeeds.
    """
    from .formats import CONVERSATION_KEYS, detect_format, extra_fields, to_chat
    from .validate import validate_record

    if mapping is not None:
        from .mapping import map_records

        records = map_records(records, mapping, on_issue)
    file_format: str | None = None
    first_format_line = 0
    # per (format, keys in file order): the sorted keys, and whether any is an extra field; most
    # files have one or two key sets, so sorting and sifting once each saves both per record
    key_sets: dict[tuple, tuple[tuple[str, ...], bool]] = {}
    for record in records:
        data = record.data
        record_format = detect_format(data) if record.problem is None else None
        has_error = False
        for issue in validate_record(record, record_format):
            on_issue(issue)
            has_error = has_error or issue.severity == "error"
        if has_error:
            continue
        if record_format is None:  # the validator names what is missing; this only guards a silent drop
            on_issue(Issue(record.line, "unknown_format", "the record matches none of the accepted formats",
                           "use chat messages, instruction/output, prompt/completion or ShareGPT conversations"))
            continue
        if file_format is None:
            file_format, first_format_line = record_format, record.line
        elif record_format != file_format:
            on_issue(_format_mismatch(record.line, record_format, file_format, first_format_line))
            continue
        try:
            chat = to_chat(data, record_format)
        except (ValueError, TypeError, KeyError) as exc:  # one bad record must not drop the others
            on_issue(Issue(record.line, "conversion_failed", f"could not convert this record: {exc}",
                           "check the record's fields against the format's documentation"))
            continue
        key_set = (record_format, *data)
        known = key_sets.get(key_set)
        if known is None:
            conversation_keys = CONVERSATION_KEYS.get(record_format, frozenset())
            known = (tuple(sorted(data)), any(key not in conversation_keys for key in data))
            if len(key_sets) < 1024:
                key_sets[key_set] = known
        yield Example(record.line, chat, record_format, extra_fields(data, record_format) if known[1] else {}, known[0])


def _counted(records: Iterable[Record], report: DataReport, accumulator: _Accumulator,
             progress: ProgressFn | None) -> Iterator[Record]:
    """The records, counted into the report, with progress by bytes read."""
    next_progress = 0.0
    file_size = accumulator.file_size
    for record in records:
        report.n_records += 1
        accumulator.bytes_seen += record.raw_size
        if progress and file_size and report.n_records % 1024 == 0:
            fraction = min(accumulator.bytes_seen / file_size, 0.99)
            if fraction >= next_progress:
                progress(fraction, f"checked {report.n_records:,} records")
                next_progress = fraction + 0.02
        yield record


def _scan(streams: Iterable[Iterable[Record]], report: DataReport, accumulator: _Accumulator,
          progress: ProgressFn | None, mapping=None, formats: list | None = None) -> None:
    """Each stream's valid examples into the accumulator; `report.format` is the first example's format, or
    "mixed" when the streams (sources) differ."""
    from .formats import has_images

    for index, records in enumerate(streams):
        if index:  # another source: the checklist judges formats and keys within each (`start_source`)
            accumulator.flush()
            accumulator.checklist.start_source()
        stream_format = None
        for example in iter_examples(_counted(records, report, accumulator, progress), accumulator.issue, mapping):
            if stream_format is None:
                stream_format = example.source_format
                if report.format is None:
                    report.format = stream_format
                elif report.format != stream_format:
                    report.format = "mixed"
            if has_images(example.chat):
                accumulator.vision_lines.append(example.line)
            accumulator.example(example)
        if formats is not None:
            formats.append(stream_format)


def _finish(report: DataReport, accumulator: _Accumulator, file_size: int, context_limit: int | None,
            target: str) -> None:
    from .tokens import summarize
    from .validate import context_warnings, validate_dataset_size, vision_warnings

    report.n_examples = len(accumulator.per_example)
    if report.n_records == 0:
        accumulator.issue(Issue(0, "empty_file", "the file holds no records",
                        "upload a file with one example per line (JSONL) or a JSON array of examples"))
    else:
        for issue in validate_dataset_size(report.n_examples, file_size):
            accumulator.issue(issue)
    report.n_vision_examples = len(accumulator.vision_lines)
    for issue in vision_warnings(accumulator.vision_lines, report.model):
        accumulator.issue(issue)
    if context_limit:
        for issue in context_warnings(accumulator.lines, accumulator.per_example, context_limit, target):
            accumulator.issue(issue)
    tokens = report.tokens
    tokens.total = sum(accumulator.per_example)
    tokens.assistant_total = sum(accumulator.assistant_per_example)
    tokens.stats = {"total": summarize(accumulator.per_example),
                    "assistant": summarize(accumulator.assistant_per_example)}
    tokens.over_limit = [line for line, total in zip(accumulator.lines, accumulator.per_example)
                         if context_limit and total > context_limit]
    report.checklist = accumulator.checklist.finish()
    accumulator.checklist = None  # its per-example arrays go before the report's lists come
    # the report holds plain lists (JSON), made last
    tokens.per_example = accumulator.per_example.tolist()
    tokens.assistant_per_example = accumulator.assistant_per_example.tolist()
    tokens.lines = accumulator.lines.tolist()
    report.error_counts = dict(sorted(accumulator.error_counts.items()))
