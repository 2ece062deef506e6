"""Preference pairs: the data a DPO run trains on, read and checked line by line.

Canonical row (TRL's conversational preference format, explicit prompt):
    {"prompt": [messages], "chosen": [{"role": "assistant", "content": ...}], "rejected": [...]}
Also read: plain strings (`{"prompt": "...", "chosen": "...", "rejected": "..."}`, as the Arena's
"plain" export writes them), a single message instead of a one-message list, and rows with no
`prompt` whose chosen and rejected conversations share their first turns (TRL's implicit prompt).

Why everything becomes conversational: the models the app trains are chat models, served through
their chat template (the Arena asks them that way), so a pair teaches most when it is rendered
the same way. A plain-string pair is a one-turn chat: the prompt the user's message, each answer
the assistant's.

Light module (json only): the use cases probe files with it, the worker reads them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAIR_KEYS = ("prompt", "chosen", "rejected")
PAIRS_HINT = ('Each line of a preference file is {"prompt": [messages], "chosen": [{"role": "assistant", '
              '"content": ...}], "rejected": [...]} or the same with plain strings; the Arena\'s "Export DPO pairs" '
              "writes them.")
_ROLES = ("system", "user", "assistant", "tool")


class PairError(ValueError):
    """A line that is not a usable preference pair; the message says why."""


@dataclass
class PairFile:
    """The usable pairs of a file, and the lines left out with the reason for each."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def problem_text(self, limit: int = 3) -> str:
        shown = "; ".join(f"line {n}: {why}" for n, why in self.problems[:limit])
        more = len(self.problems) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


def _message(value: Any, default_role: str) -> dict[str, str]:
    if isinstance(value, str):
        return {"role": default_role, "content": value}
    if isinstance(value, dict) and value.get("role") in _ROLES and isinstance(value.get("content"), str):
        return {"role": value["role"], "content": value["content"]}
    raise PairError(f"a {default_role} message must be a string or {{\"role\", \"content\"}} (got {_short(value)})")


def _messages(value: Any, default_role: str) -> list[dict[str, str]]:
    if isinstance(value, list):
        if not value:
            raise PairError("an empty message list")
        return [_message(m, default_role) for m in value]
    return [_message(value, default_role)]


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def normalize_pair(obj: Any) -> dict[str, Any]:
    """The canonical conversational row for one parsed line; PairError says what is wrong with it."""
    if not isinstance(obj, dict):
        raise PairError("not a JSON object")
    if "messages" in obj and "chosen" not in obj:
        raise PairError('a chat ({"messages": ...}), not a preference pair')
    missing = [k for k in ("chosen", "rejected") if k not in obj]
    if missing:
        raise PairError(f"no {' or '.join(missing)}")
    if "prompt" in obj:
        prompt = _messages(obj["prompt"], "user")
        chosen, rejected = _messages(obj["chosen"], "assistant"), _messages(obj["rejected"], "assistant")
    else:  # implicit prompt: the turns both conversations share
        chosen_all, rejected_all = _messages(obj["chosen"], "assistant"), _messages(obj["rejected"], "assistant")
        shared = 0
        while (shared < min(len(chosen_all), len(rejected_all)) - 1
               and chosen_all[shared] == rejected_all[shared]):
            shared += 1
        if not shared:
            raise PairError("no prompt, and chosen and rejected share no first turns to take it from")
        prompt, chosen, rejected = chosen_all[:shared], chosen_all[shared:], rejected_all[shared:]
    if prompt[-1]["role"] == "assistant":
        raise PairError("the prompt ends with an assistant turn: it must end where the answer starts")
    for name, answer in (("chosen", chosen), ("rejected", rejected)):
        if answer[0]["role"] != "assistant":
            raise PairError(f"{name} must start with an assistant message")
        if not any(m["content"].strip() for m in answer):
            raise PairError(f"{name} is empty")
    if chosen == rejected:
        raise PairError("chosen and rejected are the same answer: nothing to prefer")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def load_pairs(path: str | Path) -> PairFile:
    """Every usable pair of a JSONL file (canonical rows) and the lines left out, with line numbers."""
    out = PairFile()
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.pairs.append(normalize_pair(json.loads(line)))
            except ValueError as exc:  # PairError, or JSON that does not parse
                why = str(exc) if isinstance(exc, PairError) else f"not valid JSON ({exc.args[0] if exc.args else exc})"
                out.problems.append((number, why))
    return out


def pair_texts(pairs: list[dict[str, Any]]) -> list[str]:
    """Every message's text (what a tiny-random tokenizer should learn to encode)."""
    return [m["content"] for p in pairs for key in PAIR_KEYS for m in p[key]]


def file_kind(path: str | Path, probe: int = 20) -> str | None:
    """"chat" (`{"messages": [...]}` lines), "pairs" (prompt/chosen/rejected lines) or None (neither, or unreadable),
    from the first `probe` non-empty lines: the use cases refuse a file that does not fit the run's objective."""
    kinds: set[str] = set()
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                obj = json.loads(line)
                if isinstance(obj, dict) and isinstance(obj.get("messages"), list) and "chosen" not in obj:
                    kinds.add("chat")
                elif isinstance(obj, dict) and "chosen" in obj and "rejected" in obj:
                    kinds.add("pairs")
                else:
                    return None
                if len(kinds) > 1:
                    return None
                probe -= 1
                if probe <= 0:
                    break
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return kinds.pop() if len(kinds) == 1 else None


def split_pairs(path: str | Path, out_dir: str | Path, valid_fraction: float = 0.1, seed: int = 42) -> dict[str, Any]:
    """Canonical train.jsonl / valid.jsonl (and dropped.jsonl with each bad line's reason) in `out_dir`.

    The split is a seeded shuffle; the validation share is at least one pair when there are two or more
    (the same rule as the chat split), so the run can report its held-out reward margin.
    Returns the paths and counts; ValueError when no line is a usable pair.
    """
    from ftassist.data.clean import split_sizes

    read = load_pairs(path)
    if not read.pairs:
        raise ValueError(f"no usable preference pairs ({read.problem_text() or 'the file is empty'}). {PAIRS_HINT}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = list(range(len(read.pairs)))
    random.Random(seed).shuffle(order)
    n_valid = split_sizes(len(order), valid_fraction)
    valid_idx = set(order[:n_valid])
    train_path, valid_path = out / "train.jsonl", out / "valid.jsonl"
    with open(train_path, "w", encoding="utf-8") as train, open(valid_path, "w", encoding="utf-8") as valid:
        for i, pair in enumerate(read.pairs):
            (valid if i in valid_idx else train).write(json.dumps(pair, ensure_ascii=False) + "\n")
    dropped_path = None
    if read.problems:
        dropped_path = out / "dropped.jsonl"
        dropped_path.write_text("".join(json.dumps({"line": n, "reason": why}) + "\n" for n, why in read.problems),
                                encoding="utf-8")
    return {"train_path": train_path, "valid_path": valid_path if n_valid else None,
            "n_train": len(read.pairs) - n_valid, "n_valid": n_valid, "n_dropped": len(read.problems),
            "dropped_path": dropped_path}
