"""Use cases of the Data step: check a dataset (and remember it), show one record, clean and split, list,
convert preference pairs between formats.

Which files they read: in the app (`Context.reads_any_file` is False: the page, the assistant, the CLI
through the app's socket) only files under the data dir, Gradio's upload folder and the shipped sample,
so that nobody who reaches the page can have any file of this machine read and shown; a person's own
command with no app running reads any file they name (`readable`).

Why here: the UI, the CLI and the assistant each checked and split datasets their own way (the
per-example limit came from the CLI module, only the UI remembered a check, a Hub id was fetched
by two different routines). One function per use case keeps them the same everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from ftassist.data import check as checking
from ftassist.data import clean as cleaning
from ftassist.data import load
from ftassist.data.mapping import Mapping, MappingError
from ftassist.plan import pricing

from .context import Context, UseCaseError
from .registry import use_case
from .session import Split

ProgressFn = Callable[[float, str], None]  # (fraction done, what is being done)
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"  # shipped with the package


# -- which files the app reads ------------------------------------------------------------------------
def upload_folder() -> Path:
    """Gradio's upload folder: where the page's uploads land (what `gradio.utils.get_upload_folder` says,
    without importing Gradio into the application layer)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def readable_roots(ctx: Context) -> list[Path]:
    """The folders the app reads datasets from: its data dir, Gradio's upload folder, the shipped sample."""
    return [ctx.settings.data_dir.resolve(), upload_folder(), SAMPLE_DIR]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def _is_hub_id(text: str) -> bool:
    """What `load.resolve_source` takes for a Hugging Face id (it fetches it into the uploads folder)."""
    if text.startswith("hf:"):
        return True
    path = Path(text).expanduser()
    return not path.is_absolute() and "/" in text and not path.suffix and not path.exists()


def readable(ctx: Context, path: str | Path) -> None:
    """Refuse, with what to do instead, a file the app must not read (see the module's docstring).

    The path is resolved first (symbolic links followed, `..` removed), so a link under the data dir that
    points elsewhere is outside too."""
    if ctx.reads_any_file:
        return
    text = str(path).strip()
    if not text or _is_hub_id(text):
        return
    resolved = Path(text).expanduser().resolve()
    if _inside(resolved, readable_roots(ctx)):
        return
    raise UseCaseError(
        f"The app reads only files uploaded to it or kept under its data dir ({ctx.settings.data_dir}), "
        f"and {text} is outside them. Upload the file on the Data step, or copy it under "
        f"{ctx.settings.uploads_dir}; `ftassist check FILE` on this machine reads any file you name.")


def _writable(ctx: Context, folder: Path) -> None:
    """The app writes results only under its data dir."""
    if ctx.reads_any_file or _inside(folder.resolve(), [ctx.settings.data_dir.resolve()]):
        return
    raise UseCaseError(f"The app writes only under its data dir ({ctx.settings.data_dir}), and {folder} is "
                       "outside it. Leave the folder out (a new one under the data dir is made), or run the "
                       "command on this machine with no app running.")


# -- check ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    """A checked dataset: its report, the file that was read, and its row in the list of checked datasets."""

    dataset_id: str | None  # None when the database could not be written (see `note`)
    path: str  # the file checked: the local file, its kept copy, or the Hub dataset written as JSONL
    report: dict[str, Any]  # DataReport.to_dict()
    note: str = ""  # what the person should know beyond the report (the check was not remembered)

    @property
    def n_errors(self) -> int:
        return len(self.report.get("errors") or [])


@use_case(assistant=True, confirm=True)
def check_dataset(ctx: Context, path: str, model: str | None = None, context_limit: int | None = None,
                  encoding: str | None = None, keep_copy: bool = False, mapping: dict | None = None,
                  paths: list[str] | None = None, *, progress: ProgressFn | None = None) -> CheckResult:
    """Check a dataset: every record validated with its line and a fix, the quality checklist, exact tokens.

    The check is remembered in the list of checked datasets (`list_datasets`). With `paths`, several files
    (or Hub datasets) are checked as one dataset, each issue naming its file and line (`file:line`).

    Args:
        path: a .jsonl/.json/.csv/.parquet file, or a Hugging Face dataset id (hf:org/name, or hf:org/name:subset@split).
        model: the target model: sets the tokenizer and the per-example token limit.
        context_limit: the per-example token limit to check against (default: the target model's).
        encoding: a tiktoken encoding that replaces the one the target model uses.
        keep_copy: copy the file under the data dir first (an upload whose temporary file will go away).
        mapping: for records in no known format, which key holds each part (prompt, input, answer, system, messages; or chosen and rejected, for preference pairs), e.g. {"prompt": "instruction", "answer": "instances[].output"}.
        paths: more files or Hugging Face dataset ids, combined with path into one dataset (each file judged in its own format).
    """
    if progress is not None and not callable(progress):
        raise UseCaseError("progress is a callback for callers in the app's own process, not a JSON value.")
    if context_limit is not None and context_limit < 1:
        raise UseCaseError(f"The per-example token limit must be at least 1 (got {context_limit}).")
    mapping = _mapping(mapping)
    given = _given(path, paths)
    for text in given:
        readable(ctx, text)
    try:
        named = _sources(ctx, given, progress, keep_copy)
        limit = context_limit or pricing.example_limit_for(model)
        if len(named) == 1:
            report = checking.check_path(named[0][1], model=model or None, encoding=encoding or None,
                                         context_limit=limit, progress=progress, mapping=mapping)
        else:
            from ftassist.data.sources import check_sources

            report = check_sources(named, model=model or None, encoding=encoding or None, context_limit=limit,
                                   progress=progress, mapping=mapping)
    except load.LoadError as exc:
        raise UseCaseError(str(exc)) from None
    if len(named) == 1:
        hub_id = given[0] if given[0].startswith("hf:") else None
        name = hub_id
    else:  # the row names every source; its report lists them with their paths (`report["sources"]`)
        name = " + ".join(source_name for source_name, _ in named)
    dataset_id, note = _remember(ctx, report, str(named[0][1]), name=name)
    return CheckResult(dataset_id=dataset_id, path=str(named[0][1]), report=report.to_dict(), note=note)


def _given(path: str, paths: list[str] | None) -> list[str]:
    """The sources a caller named: `path`, then `paths`; blanks dropped, the first of a repeat kept."""
    given: list[str] = []
    for text in [path, *(paths or [])]:
        text = str(text or "").strip()
        if text and text not in given:
            given.append(text)
    if not given:
        raise UseCaseError("Name a dataset: a file path or a Hugging Face dataset id (hf:org/name).")
    return given


def _sources(ctx: Context, given: list[str], progress: ProgressFn | None, keep_copy: bool) -> list[tuple[str, Path]]:
    """(name, file to read) for each source named: Hub ids fetched into the uploads folder, uploads kept when asked.
    Raises load.LoadError."""
    from ftassist.data.sources import source_names

    out = []
    for name, text in zip(source_names(given), given):
        if progress and text.startswith("hf:"):
            progress(0.0, f"fetching {text[3:]} from the Hugging Face Hub")
        source = load.resolve_source(text, hub_dir=ctx.settings.uploads_dir)
        readable(ctx, source)
        if keep_copy:
            source = _keep(ctx, source)
        out.append((name, source))
    return out


def _mapping(value: dict | str | None) -> Mapping | None:
    """The mapping a caller gave, checked: a UseCaseError that says what is wrong with it."""
    try:
        return Mapping.of(value or None)
    except MappingError as exc:
        raise UseCaseError(f"The field mapping cannot be used: {exc}.") from None


def _keep(ctx: Context, source: Path) -> Path:
    """A copy under the uploads folder, so a session can come back to the file after a reload."""
    dest = ctx.settings.uploads_dir / f"{uuid.uuid4().hex[:8]}-{source.name}"
    try:
        shutil.copyfile(source, dest)
    except OSError as exc:
        raise UseCaseError(f"Could not keep a copy of {source.name} under {dest.parent}: "
                           f"{exc.strerror or exc} (is the disk full?).") from None
    return dest


def _remember(ctx: Context, report, path: str, name: str | None = None) -> tuple[str | None, str]:
    """Add the check to the list of checked datasets. The report is recorded without its per-example token
    lists (they are the bulk of it, and the file can be checked again).

    A process that has not opened the database (a command with no app running) journals the row instead
    (`store.journal_row`): the next process to open the database inserts it, and the check never waits on
    loading DuckDB. A database held by another process does not lose the person the check they waited for."""
    from ftassist.store import StoreLockedError, journal_row

    dataset_id = uuid.uuid4().hex
    without_tokens = replace(report, tokens=None).to_dict()  # replace: the token lists are never copied
    del without_tokens["tokens"]
    row = {"id": dataset_id, "name": name or Path(path).name, "path": path, "format": report.format,
           "n_examples": report.n_examples, "n_errors": len(report.errors),
           "report_json": json.dumps(without_tokens, default=str),
           "created_at": datetime.now().isoformat(sep=" ", timespec="seconds")}
    try:
        if ctx.store_is_open:
            names = list(row)
            ctx.store.execute(f"INSERT INTO datasets ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                              [row[n] for n in names])
        else:
            journal_row(ctx.settings.data_dir, "datasets", row)
    except StoreLockedError as exc:
        return None, f"This check was not added to the list of checked datasets: {exc}"
    except OSError as exc:
        return None, f"This check was not added to the list of checked datasets: {exc.strerror or exc}"
    return dataset_id, ""


# -- one record ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordText:
    path: str
    line: int
    text: str  # the record, parsed and indented when it parses, else its raw text; or why there is none


PREVIEW_CHARS = 5000


@use_case(assistant=True)
def show_record(ctx: Context, path: str, line: int) -> RecordText:
    """Show the record that starts at a line of a dataset file, to read it next to its error.

    Args:
        path: the dataset file.
        line: the line the record starts at (as the check reports it).
    """
    if line < 1:
        raise UseCaseError(f"Line numbers start at 1 (got {line}); line 0 means the file as a whole.")
    readable(ctx, path)
    try:
        if load.detect_file_type(path) == "jsonl":
            text = load.read_text_preview(path, line, max_chars=PREVIEW_CHARS)
            return RecordText(path, line, text or "(no record starts at this line)")
        for record in load.iter_records(path):
            if record.line == line:
                if record.problem is not None:
                    return RecordText(path, line, f"(this record could not be parsed: {record.problem.message})")
                return RecordText(path, line, json.dumps(record.data, ensure_ascii=False, indent=2,
                                                         default=str)[:PREVIEW_CHARS])
            if record.line > line:
                break
    except load.LoadError as exc:
        raise UseCaseError(str(exc)) from None
    return RecordText(path, line, "(no record starts at this line)")


# -- map your fields -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MappingPreview:
    """The first records of a file as a mapping makes them, or why it cannot."""

    records: list[dict]  # in a known format (alpaca or chat), one per expanded item
    problem: str = ""  # the first record the mapping does not fit, with its line


@use_case(assistant=True)
def preview_mapping(ctx: Context, path: str, mapping: dict, limit: int = 3) -> MappingPreview:
    """Show the first records of a dataset as a field mapping turns them into examples, before checking with it.

    Args:
        path: the dataset file.
        mapping: which key holds each part, e.g. {"prompt": "question", "answer": "answer"}.
        limit: how many mapped records to show.
    """
    from ftassist.data.mapping import apply_mapping

    checked = _mapping(mapping)
    if checked is None:
        raise UseCaseError("Name the fields to map: at least the prompt and the answer.")
    readable(ctx, path)
    out: list[dict] = []
    try:
        for record in load.iter_records(path):
            if record.problem is not None:
                continue
            try:
                out.extend(apply_mapping(record.data, checked))
            except MappingError as exc:
                return MappingPreview(out[:limit], f"line {record.line}: {exc}")
            if len(out) >= limit:
                break
    except load.LoadError as exc:
        raise UseCaseError(str(exc)) from None
    return MappingPreview(out[:limit])


# -- clean and split ----------------------------------------------------------------------------------
def split_of(result: cleaning.CleanResult) -> Split:
    """What the session keeps of a Fix & split (`Session.split_into`): the test split too, which only the
    Evaluate step reads (`Session.training_files` never names it)."""
    test = str(result.test_path) if result.test_path is not None and result.n_test else None
    return Split(train=str(result.train_path), valid=str(result.valid_path), folder=str(result.folder),
                 n_train=result.n_train, n_valid=result.n_valid, test=test, n_test=result.n_test if test else 0)


@use_case(assistant=True, confirm=True)
def clean_dataset(ctx: Context, path: str, valid_fraction: float = 0.1, seed: int = 42,
                  out: str | None = None, fill: dict[str, str] | None = None,
                  mapping: dict | None = None, paths: list[str] | None = None,
                  test_fraction: float | None = None) -> cleaning.CleanResult:
    """Fix & split a dataset: drop invalid records, duplicates and empty answers, trim, split train/validation/test.

    Near-copies stay on one side of the split, so validation measures generalisation. A file of preference
    pairs is split as pairs: broken, identical, empty and repeated pairs dropped, no prompt on two sides.
    With `paths`, several files make one split, duplicates dropped across them. The test split is never
    trained on; the Evaluate step measures the models on it.

    Args:
        path: the dataset file (or a Hugging Face dataset id, hf:org/name or hf:org/name:subset@split).
        valid_fraction: the share of examples held out for validation, at least 0 and below 1.
        seed: the random seed of the split (the same seed gives the same split).
        out: the folder to write to (default: a new folder under the data dir).
        fill: values for placeholders left in the texts, e.g. {"name": "Ada"} fills {{name}}.
        mapping: for records in no known format, which key holds each part (as for check_dataset).
        paths: more files or Hugging Face dataset ids, split together with path (each dropped record names its file).
        test_fraction: the share held out as the test split, for the Evaluate step (default: 0.1 when at least
            200 examples are kept, none below; 0: no test split).
    """
    if not 0 <= valid_fraction < 1:
        raise UseCaseError(f"The validation fraction must be at least 0 and below 1 (got {valid_fraction}).")
    if test_fraction is not None and not (0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise UseCaseError(f"The test fraction must be at least 0, and with the validation fraction "
                           f"({valid_fraction}) below 1, so something is left to train on (got {test_fraction}).")
    mapping = _mapping(mapping)
    folder = Path(out).expanduser() if out else ctx.settings.clean_dir / uuid.uuid4().hex[:8]
    given = _given(path, paths)
    for text in given:
        readable(ctx, text)
    _writable(ctx, folder)
    try:
        named = _sources(ctx, given, None, keep_copy=False)
        if len(named) == 1:
            result = cleaning.clean_file(named[0][1], folder, valid_fraction=valid_fraction, seed=seed, fill=fill,
                                         mapping=mapping, test_fraction=test_fraction)
        else:
            from ftassist.data.sources import clean_sources

            result = clean_sources(named, folder, valid_fraction=valid_fraction, seed=seed, fill=fill,
                                   mapping=mapping, test_fraction=test_fraction)
    except load.LoadError as exc:
        raise UseCaseError(str(exc)) from None
    except OSError as exc:
        raise UseCaseError(f"Could not write the split under {folder}: {exc.strerror or exc}.") from None
    return result


# -- preference pairs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairsConversion:
    """A file of preference pairs written in another format."""

    path: str  # the file written
    format: str  # one of preferences.PAIR_EXPORT_FORMATS
    source_format: str | None  # the pairs' format as read ("openai_dpo", "trl", "sharegpt")
    n_pairs: int  # valid pairs read
    n_written: int
    n_skipped: int  # valid pairs the format cannot hold (e.g. tool calls in plain text)
    n_invalid: int  # records dropped as invalid (check the file to see why)
    problems: list[str]  # the first invalid records, "line N: message"


@use_case(assistant=True, confirm=True)
def convert_pairs(ctx: Context, path: str, to: str = "trl", out: str | None = None) -> PairsConversion:
    """Write a file of preference pairs (DPO data) in another format: TRL, OpenAI DPO or ShareGPT (LLaMA-Factory).

    Invalid records are left out and counted; run the check to see each with its line and fix.

    Args:
        path: the file of pairs (OpenAI DPO, TRL prompt/chosen/rejected, or ShareGPT pairs).
        to: trl (conversational, explicit prompt: what ftassist trains on), openai_dpo, sharegpt, trl_standard (plain text) or trl_implicit.
        out: the file to write (default: under the data dir's exports folder).
    """
    from ftassist.data.check import peek
    from ftassist.data.preferences import PAIR_EXPORT_FORMATS, PAIR_EXPORT_SUFFIX, is_preference, iter_pairs, write_pairs

    if to not in PAIR_EXPORT_FORMATS:
        raise UseCaseError(f"Unknown pair format {to!r}: choose one of {', '.join(PAIR_EXPORT_FORMATS)}.")
    readable(ctx, path)
    try:
        source = load.resolve_source(path, hub_dir=ctx.settings.uploads_dir)
        readable(ctx, source)
        first, records = peek(load.iter_records(source))
        if not is_preference(first):
            raise UseCaseError(f"{source.name} does not hold preference pairs (a prompt with a chosen and a "
                               "rejected answer): `ftassist check` says what it holds.")
        problems: list[str] = []
        invalid: set[int] = set()

        def on_issue(issue) -> None:
            if issue.severity == "error" and issue.line not in invalid:
                invalid.add(issue.line)
                if len(problems) < 10:
                    problems.append(f"line {issue.line}: {issue.message}")

        pairs = list(iter_pairs(records, on_issue))
    except load.LoadError as exc:
        raise UseCaseError(str(exc)) from None
    target = Path(out).expanduser() if out else \
        ctx.settings.exports_dir / f"{Path(source).stem}_{to}{PAIR_EXPORT_SUFFIX[to]}"
    _writable(ctx, target.parent)
    try:
        written = write_pairs((pair.pair for pair in pairs), target, to)
    except OSError as exc:
        raise UseCaseError(f"Could not write {target}: {exc.strerror or exc}.") from None
    return PairsConversion(path=str(target), format=to, source_format=pairs[0].source_format if pairs else None,
                           n_pairs=len(pairs), n_written=written, n_skipped=len(pairs) - written,
                           n_invalid=len(invalid), problems=problems)


# -- the checked datasets -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckedDataset:
    id: str
    name: str  # the file name, or the Hub id it came from
    path: str
    format: str | None
    n_examples: int
    n_errors: int
    model: str | None  # the target model it was checked for
    checked_at: datetime | None
    exists: bool  # the file is still there (uploads and Hub copies can be cleared)


@use_case(assistant=True)
def list_datasets(ctx: Context, limit: int = 20) -> list[CheckedDataset]:
    """List the datasets checked so far, newest first, with their size and errors.

    Args:
        limit: how many to list at most.
    """
    if limit < 1:
        raise UseCaseError(f"The number of datasets to list must be at least 1 (got {limit}).")
    ctx.store.ingest_journal()  # checks recorded by commands that ran while nothing held the database
    rows = ctx.store.query(
        "SELECT id, name, path, format, n_examples, n_errors, created_at, "
        "json_extract_string(report_json, '$.model') AS model "
        "FROM datasets ORDER BY created_at DESC, rowid DESC LIMIT ?", [int(limit)])
    return [CheckedDataset(id=r["id"], name=r["name"], path=r["path"], format=r["format"],
                           n_examples=int(r["n_examples"] or 0), n_errors=int(r["n_errors"] or 0),
                           model=r["model"], checked_at=r["created_at"], exists=Path(r["path"]).is_file())
            for r in rows]
