"""Preference pairs read strictly, counted, and written in the hosted providers' shape.

What a pair is (the formats people have, the canonical pair, the validation) is `preferences.py`'s; this
module adds what the paths that spend money need on top of it:

- strictness: a file that is uploaded to a provider, or priced, must hold nothing but valid pairs, so the
  first invalid record stops it with its line and fix (the Data step's check reports them all and Fix &
  split drops them; here nothing is dropped silently);
- the provider file: OpenAI and Together take the same preference rows, `{"input": {"messages": [...]},
  "preferred_output": [assistant message], "non_preferred_output": [assistant message]}`;
- the counts: a pair is its two sequences, prompt + chosen and prompt + rejected, as DPO trains on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .preferences import Pair, chats_of, iter_pairs, pair_to_openai_dpo

PAIR_HINT = ('Each record must be a preference pair, e.g. {"prompt": [messages ending with the user turn], '
             '"chosen": [{"role": "assistant", "content": ...}], "rejected": [{"role": "assistant", "content": ...}]} '
             "(the arena's DPO export writes this); `ftassist check FILE` lists every problem.")


class PairError(ValueError):
    """A record that is not a usable pair: its line, what is wrong, and how to fix it."""

    def __init__(self, line: int, message: str, hint: str = PAIR_HINT):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.hint = hint or PAIR_HINT


def pair_from_record(record: object, line: int = 1) -> Pair:
    """One record (a pasted pair, say) as a canonical Pair; PairError when it is not a valid pair."""
    from .preferences import is_preference, shape_of, to_pair, validate_pair

    if not is_preference(record):
        raise PairError(line, "not a preference pair (no \"chosen\" and \"rejected\", nor OpenAI's preferred and "
                              "non-preferred outputs)")
    errors = [issue for issue in validate_pair(record, line) if issue.severity == "error"]
    if errors:
        raise PairError(line, errors[0].message.rstrip("."), errors[0].hint or PAIR_HINT)
    return Pair(line, to_pair(record), *shape_of(record))


def read_pairs(path: str | Path) -> list[Pair]:
    """Every pair of a file (JSONL, JSON, CSV or Parquet), canonical; PairError at the first record that is not a
    valid pair (or when there is none), `load.LoadError` when the file cannot be read at all."""
    from .load import iter_records

    errors: list = []
    pairs = []
    for pair in iter_pairs(iter_records(path), lambda issue: errors.append(issue)
                           if getattr(issue, "severity", "error") == "error" else None):
        pairs.append(pair)
    if errors:
        first = min(errors, key=lambda issue: issue.line)
        raise PairError(first.line, first.message.rstrip("."), first.hint or PAIR_HINT)
    if not pairs:
        raise PairError(1, f"{Path(path).name} has no preference pairs")
    return pairs


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
