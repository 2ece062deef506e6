"""Preference pairs read for what trains on them, prices them and uploads them: the one reader of pair files.

What a pair is (the formats people have, the canonical pair, validation with lines and fixes) is
`preferences.py`'s, and every file is read through it (`load.iter_records`, then `preferences.iter_pairs`).
So a file the Data step accepts (OpenAI DPO, TRL explicit or implicit, text or messages, ShareGPT pairs;
JSONL, JSON, CSV or Parquet) trains, is priced and uploads, and a record refused here is refused with the
line, message and fix the Data step's check gives it. On top, what each user needs:

- the worker (`load_pairs`, for `train/dpo.py`): every usable pair, and the lines left out, each with the
  Data step's reason and fix: invalid records, and pairs that cannot teach (an empty side, chosen the same
  as rejected: the check's warnings that Fix & split drops). The run trains on the rest and says so;
- strictness (`read_pairs`): a file that is uploaded to a provider, or priced, must hold nothing but valid
  pairs, so the first invalid record stops it with its line and fix (nothing is dropped silently);
- the probe (`file_kind`): chats or pairs, so the use cases refuse a file that does not fit the objective;
- the provider file: OpenAI and Together take the same preference rows, `{"input": {"messages": [...]},
  "preferred_output": [assistant message], "non_preferred_output": [assistant message]}`;
- the counts: a pair is its two sequences, prompt + chosen and prompt + rejected, as DPO trains on them.

The split of a pairs file into train and validation is the Data step's (`clean.clean_file`, which splits by
prompt so that no prompt is on both sides), not this module's.

Light at import (the standard library and orjson): the app imports it at start through
`usecases/training.py`, and the DPO worker on a rented GPU (`train/hf_jobs.py` installs orjson there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable

from .preferences import Pair, PairChecks, chats_of, is_preference, iter_pairs, pair_to_openai_dpo
from .report import Issue

PAIR_HINT = ('Each record must be a preference pair, e.g. {"prompt": [messages ending with the user turn], '
             '"chosen": [{"role": "assistant", "content": ...}], "rejected": [{"role": "assistant", "content": ...}]} '
             "(the arena's DPO export writes this); `ftassist check FILE` lists every problem.")
CANNOT_TEACH = ("empty_pair_side", "identical_pair")  # the check's warnings whose pairs Fix & split drops


class PairError(ValueError):
    """A record that is not a usable pair: its line, what is wrong, and how to fix it."""

    def __init__(self, line: int, message: str, hint: str = PAIR_HINT):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.hint = hint or PAIR_HINT


@dataclass
class PairFile:
    """The usable pairs of a file (canonical, in file order) and the lines left out, one Issue a line."""

    pairs: list[dict] = field(default_factory=list)
    problems: list[Issue] = field(default_factory=list)

    def problem_text(self, limit: int = 3) -> str:
        """The first lines left out, as the Data step's check says them: line, reason and fix (a fix once)."""
        parts, fixes = [], set()
        for issue in self.problems[:limit]:
            fix = issue.hint.rstrip(".")
            parts.append(f"line {issue.line}: {issue.message.rstrip('.')}"
                         + (f" (fix: {fix})" if fix and fix not in fixes else ""))
            fixes.add(fix)
        more = len(self.problems) - limit
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")

    @property
    def hint(self) -> str:
        """The fix for the first line left out, or what a pair looks like."""
        return next((issue.hint for issue in self.problems if issue.hint), PAIR_HINT)


def pair_from_record(record: object, line: int = 1) -> Pair:
    """One record (a pasted pair, say) as a canonical Pair; PairError when it is not a valid pair."""
    from .preferences import shape_of, to_pair, validate_pair

    if not is_preference(record):
        raise PairError(line, "not a preference pair (no \"chosen\" and \"rejected\", nor OpenAI's preferred and "
                              "non-preferred outputs)")
    errors = [issue for issue in validate_pair(record, line) if issue.severity == "error"]
    if errors:
        raise PairError(line, errors[0].message.rstrip("."), errors[0].hint or PAIR_HINT)
    return Pair(line, to_pair(record), *shape_of(record))


def load_pairs(path: str | Path) -> PairFile:
    """Every pair of a file that can teach (canonical), and each line left out with the Data step's reason
    and fix. `load.LoadError` when the file cannot be read at all."""
    from .load import iter_records

    out = PairFile()
    errors: dict[int, Issue] = {}  # the first error of each line

    def on_issue(issue: Issue) -> None:
        if issue.severity == "error":
            errors.setdefault(issue.line, issue)

    checks = PairChecks()
    for pair in iter_pairs(iter_records(path), on_issue):
        cannot_teach = [issue for issue in checks.add(pair.line, pair.pair) if issue.code in CANNOT_TEACH]
        if cannot_teach:
            errors.setdefault(pair.line, cannot_teach[0])
        else:
            out.pairs.append(pair.pair)
    out.problems = [errors[line] for line in sorted(errors)]
    return out


def read_pairs(path: str | Path, mapping=None) -> list[Pair]:
    """Every pair of a file (JSONL, JSON, CSV or Parquet), canonical; PairError at the first record that is not a
    valid pair (or when there is none), `load.LoadError` when the file cannot be read at all. `mapping` (a pair
    mapping, `mapping.Mapping` or its dict): the records name their prompt and answers otherwise."""
    from .load import iter_records

    errors: list = []
    pairs = []

    def on_issue(issue) -> None:
        if getattr(issue, "severity", "error") == "error":
            errors.append(issue)

    records = iter_records(path)
    if mapping is not None:
        from .mapping import Mapping, map_records

        records = map_records(records, Mapping.of(mapping), on_issue)
    for pair in iter_pairs(records, on_issue):
        pairs.append(pair)
    if errors:
        first = min(errors, key=lambda issue: issue.line)
        raise PairError(first.line, first.message.rstrip("."), first.hint or PAIR_HINT)
    if not pairs:
        raise PairError(1, f"{Path(path).name} has no preference pairs")
    return pairs


def file_kind(path: str | Path, probe: int = 20) -> str | None:
    """"pairs" (preference records, in any format the Data step reads), "chat" (`{"messages": [...]}` records,
    what the SFT worker reads as they are) or None (neither, a mix, a record that does not parse, or an
    unreadable file), from the first `probe` records: the use cases refuse a file that does not fit the run's
    objective, and split a pairs file as pairs."""
    from .load import LoadError, iter_records

    kinds: set[str] = set()
    try:
        records = iter_records(path)
        try:
            for record in islice(records, probe):
                data = record.data
                if record.problem is not None:
                    return None
                if is_preference(data):
                    kinds.add("pairs")
                elif isinstance(data, dict) and isinstance(data.get("messages"), list):
                    kinds.add("chat")
                else:
                    return None
                if len(kinds) > 1:
                    return None
        finally:
            getattr(records, "close", lambda: None)()  # the file is closed now, not when collected
    except (LoadError, OSError, ValueError):
        return None
    return kinds.pop() if len(kinds) == 1 else None


def provider_row(pair: Pair) -> dict:
    """The row OpenAI's and Together's preference fine-tuning take; PairError when a side is not one assistant
    message (both providers take exactly one)."""
    try:
        return pair_to_openai_dpo(pair.pair)
    except ValueError as exc:
        raise PairError(pair.line, str(exc), "Keep only the final assistant answer on each side.") from None


def write_provider_file(source: str | Path, destination: str | Path) -> int:
    """Write the pairs of `source` as the JSONL OpenAI and Together take for DPO; the number of pairs. Nothing is
    written when a record is refused (PairError names its line), so a half-converted file never reaches a
    provider."""
    import orjson

    rows = [orjson.dumps(provider_row(pair)) for pair in read_pairs(source)]
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".part")
    temporary.write_bytes(b"\n".join(rows) + b"\n")
    temporary.replace(destination)
    return len(rows)


class ProviderFileError(ValueError):
    """A file that could not be converted for a provider: the file's name and the refused line, with the fix."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def write_provider_files(given: dict[str, str | None], run_dir: str | Path, names: dict[str, str], provider: str,
                         say: Callable[[str], object]) -> dict[str, str | None]:
    """Each role's pairs (train, valid) converted into the run folder as `names[role]`, as the hosted providers
    take them; `say` tells the run's log what was written. A refused record raises ProviderFileError naming the
    file and its line, which the backend turns into its own error."""
    out: dict[str, str | None] = {role: None for role in given}
    for role, path in given.items():
        if not path:
            continue
        target = Path(run_dir) / names[role]
        try:
            count = write_provider_file(path, target)
        except PairError as exc:
            raise ProviderFileError(f"{Path(path).name} {exc}", exc.hint) from None
        say(f"{count:,} preference pairs of {Path(path).name} written as {provider} preference rows ({target.name})")
        out[role] = str(target)
    return out


@dataclass
class PairCounts:
    """Tokens per pair (prompt + chosen + prompt + rejected) and what they were counted with."""

    per_pair: list[int]
    answer_per_pair: list[int]  # chosen + rejected
    longest_sequence: int  # the longest single sequence (prompt + one answer): what the sequence length must hold
    encoding: str
    exact: bool


def count_pairs(pairs: list[Pair], model: str | None = None) -> PairCounts:
    """Token counts of pairs, each as its two sequences: with the open model's own tokenizer when it is here,
    else tiktoken (exact for OpenAI models, approximate for open ones)."""
    from .tokens import count_chats, encoding_name_for_model, open_model_counter, tiktoken_exact

    chats = [chat for pair in pairs for chat in chats_of(pair.pair)]
    own = open_model_counter(model)
    if own is not None:
        counts, exact = own[1](chats)
        encoding = own[0]
    else:
        encoding = encoding_name_for_model(model)
        counts, exact = count_chats(chats, encoding), tiktoken_exact(model)
    per_pair = [counts[2 * k][0] + counts[2 * k + 1][0] for k in range(len(pairs))]
    answers = [counts[2 * k][1] + counts[2 * k + 1][1] for k in range(len(pairs))]
    longest = max((total for total, _ in counts), default=0)
    return PairCounts(per_pair, answers, longest, encoding, bool(exact))
