"""The one-click fix: drop invalid records and duplicates, trim whitespace, split train/valid.

A file of preference pairs gets the same fix as pairs (`clean_pairs`): pairs that cannot teach are
dropped with their reason, canonical pairs are written, and no prompt is on both sides of the split.

Why the split works on groups: a validation set only measures generalisation if none of its
examples is also in training. Exact duplicates are dropped first; then examples that share
the same *normalised* prompt and answer (case, spacing and punctuation aside, system prompt
ignored) are kept together on one side, so near-copies cannot leak across the split either.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import orjson

from ftassist.data.formats import EXPORT_SUFFIX, chat_to_openai, write_export
from ftassist.data.load import LoadError
from ftassist.data.report import Example
from ftassist.data.textkeys import text_of


class NothingToKeep(LoadError):
    """A Fix & split would keep no example: it refuses instead of writing empty files.

    A LoadError, so every caller that already turns an unusable file into a one-line message
    (the use case, the CLI's exit code 2) does so for this too.
    """


@dataclass
class CleanResult:
    folder: Path  # where every file below was written
    train_path: Path
    valid_path: Path
    dropped_path: Path  # JSONL: {"line", "reason", "detail"} per dropped record
    all_path: Path  # the whole cleaned set (train + valid, in source order), OpenAI chat JSONL
    exports: dict[str, Path] = field(default_factory=dict)  # "alpaca" / "sharegpt" -> path of the full set
    export_skipped: dict[str, int] = field(default_factory=dict)  # conversations a format cannot hold
    n_in: int = 0  # examples + invalid records seen
    n_train: int = 0
    n_valid: int = 0
    n_dropped_invalid: int = 0
    n_dropped_duplicates: int = 0
    n_dropped_empty: int = 0  # an answer that was only whitespace
    seed: int = 42
    valid_fraction: float = 0.1
    n_recovered: int = 0  # records a file-level fix (Python literals, encoding...) kept that would be dropped
    repaired: str = ""  # what that fix was, for the person
    kind: str = "chat"  # "preference": the files hold canonical preference pairs (`preferences.py`), not chats
    n_dropped_identical: int = 0  # pairs whose chosen answer was the rejected one

    @property
    def n_kept(self) -> int:
        return self.n_train + self.n_valid

    @property
    def files(self) -> list[Path]:
        """Every file written, for downloads."""
        return [self.train_path, self.valid_path, self.dropped_path, *self.exports.values()]

    def to_dict(self) -> dict:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        out["exports"] = {k: str(v) for k, v in self.exports.items()}
        out["n_kept"] = self.n_kept
        if self.kind == "chat":  # a chat clean's dict is what it always was: only pairs say their kind
            del out["kind"], out["n_dropped_identical"]
        return out


# --------------------------------------------------------------------------- helpers


def trim_chat(chat: dict) -> dict:
    """A copy of `chat` with every string content stripped of leading/trailing whitespace."""
    msgs = []
    for m in chat["messages"]:
        c = m.get("content")
        if isinstance(c, str):
            s = c.strip()
            if s is not c:
                m = dict(m)
                m["content"] = s
        msgs.append(m)
    out = dict(chat)
    out["messages"] = msgs
    return out


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}")


def fill_placeholders(chat: dict, values: dict[str, str]) -> dict:
    """A copy of `chat` with `{{name}}` placeholders in its texts (contents, text parts, tool results)
    replaced by the values the person gives; placeholders without a value stay as they are.

    Tool call arguments are left alone: they are JSON, and a value could break it."""
    if not values:
        return chat

    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text) if "{{" in text else text

    msgs = []
    for m in chat["messages"]:
        c = m.get("content")
        if isinstance(c, str):
            m = {**m, "content": fill(c)}
        elif isinstance(c, list):
            m = {**m, "content": [{**p, "text": fill(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str)
                                  else p for p in c]}
        msgs.append(m)
    return {**chat, "messages": msgs}


def _has_empty_answer(chat: dict) -> bool:
    for m in chat["messages"]:
        if m.get("role") == "assistant" and not m.get("content") and not (
            m.get("tool_calls") or m.get("function_call")
        ):
            return True
    return False


def exact_key(chat: dict) -> bytes:
    """Hash of the canonical JSON: identical examples (after trimming) share it."""
    return hashlib.blake2b(orjson.dumps(chat, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Case-, spacing- and punctuation-insensitive form of a text."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def group_key(chat: dict) -> bytes:
    """The normalised prompt + answer (system prompt ignored): examples sharing it stay on one side."""
    parts = []
    for m in chat["messages"]:
        if m.get("role") == "system":
            continue
        c = m.get("content")
        parts.append(f"{m.get('role')}:{normalise_text(c if isinstance(c, str) else text_of(c))}")
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def split_sizes(n: int, valid_fraction: float) -> int:
    """How many examples go to validation: round(n*f), at least 1 and at most n-1 when n >= 2 and f > 0."""
    if n < 2 or valid_fraction <= 0:
        return 0
    return min(max(1, round(n * valid_fraction)), n - 1)


def assign_split(groups: list[list[int]], n: int, valid_fraction: float, seed: int) -> set[int]:
    """Indices that go to validation: whole groups, in a seeded random order, up to the target size."""
    target = split_sizes(n, valid_fraction)
    if not target:
        return set()
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    valid: set[int] = set()
    for g in order:
        members = groups[g]
        if len(valid) + len(members) <= target:
            valid.update(members)
            if len(valid) == target:
                break
    if not valid:  # every group is bigger than the target: take the smallest that leaves training non-empty
        smallest = min((groups[g] for g in order), key=len)
        if len(smallest) < n:
            valid.update(smallest)
    return valid


# --------------------------------------------------------------------------- the fix


def clean_and_split(
    examples: Iterable[Example],
    invalid_lines: dict[int, list[str]] | None,
    out_dir: str | Path,
    *,
    valid_fraction: float = 0.1,
    seed: int = 42,
    dedupe: bool = True,
    fill: dict[str, str] | None = None,
) -> CleanResult:
    """Write train.jsonl / valid.jsonl (OpenAI chat), cleaned.jsonl, alpaca + sharegpt exports, dropped.jsonl.

    `examples` are the valid records (converted to canonical chat); `invalid_lines` maps the
    line of each invalid record to its reasons (error codes or messages), listed as dropped.
    """
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be at least 0 and below 1, got {valid_fraction}")
    out = Path(out_dir)
    res = CleanResult(
        folder=out,
        train_path=out / "train.jsonl",
        valid_path=out / "valid.jsonl",
        dropped_path=out / "dropped.jsonl",
        all_path=out / "cleaned.jsonl",
        seed=seed,
        valid_fraction=valid_fraction,
    )
    dropped: list[dict] = []
    for line in sorted(invalid_lines or {}):
        reasons = invalid_lines[line]
        dropped.append({"line": line, "reason": "invalid", "detail": ", ".join(map(str, reasons))})
        res.n_dropped_invalid += 1
    res.n_in = res.n_dropped_invalid

    kept: list[tuple[int, dict]] = []  # (source line, trimmed chat)
    seen: dict[bytes, int] = {}
    for ex in examples:
        res.n_in += 1
        chat = trim_chat(fill_placeholders(ex.chat, fill) if fill else ex.chat)
        if _has_empty_answer(chat):
            dropped.append({"line": ex.line, "reason": "empty_answer",
                            "detail": "an assistant answer is empty after trimming whitespace"})
            res.n_dropped_empty += 1
            continue
        try:
            key = exact_key(chat)
        except (TypeError, orjson.JSONEncodeError) as exc:
            dropped.append({"line": ex.line, "reason": "invalid", "detail": f"cannot be written as JSON: {exc}"})
            res.n_dropped_invalid += 1
            continue
        if dedupe:
            first = seen.get(key)
            if first is not None:
                dropped.append({"line": ex.line, "reason": "duplicate",
                                "detail": f"exact duplicate of line {first}", "duplicate_of": first})
                res.n_dropped_duplicates += 1
                continue
            seen[key] = ex.line
        kept.append((ex.line, chat))
    seen.clear()
    if not kept:
        raise NothingToKeep(_nothing_kept_reason(res))
    out.mkdir(parents=True, exist_ok=True)

    by_key: dict[bytes, list[int]] = {}
    for i, (_, chat) in enumerate(kept):
        by_key.setdefault(group_key(chat), []).append(i)
    valid = assign_split(list(by_key.values()), len(kept), valid_fraction, seed)

    with open(res.train_path, "wb") as ft, open(res.valid_path, "wb") as fv, open(res.all_path, "wb") as fa:
        for i, (_, chat) in enumerate(kept):
            row = orjson.dumps(chat_to_openai(chat)) + b"\n"
            fa.write(row)
            if i in valid:
                fv.write(row)
                res.n_valid += 1
            else:
                ft.write(row)
                res.n_train += 1

    for fmt in ("alpaca", "sharegpt"):
        path = out / f"cleaned_{fmt}{EXPORT_SUFFIX[fmt]}"
        n = write_export((chat for _, chat in kept), path, fmt)
        res.exports[fmt] = path
        res.export_skipped[fmt] = len(kept) - n

    dropped.sort(key=lambda d: d["line"])
    with open(res.dropped_path, "wb") as fd:
        for d in dropped:
            fd.write(orjson.dumps(d) + b"\n")
    return res


def _nothing_kept_reason(res: CleanResult) -> str:
    parts = [f"{count:,} {what}" for count, what in ((res.n_dropped_invalid, "invalid"),
             (res.n_dropped_empty, "with an empty answer")) if count]
    why = ("every record would be dropped (" + ", ".join(parts) + ")") if parts else "the file holds no example"
    return f"Fix & split would keep no example: {why}; nothing was written"


def clean_file(
    path: str | Path, out_dir: str | Path, *, valid_fraction: float = 0.1, seed: int = 42, dedupe: bool = True,
    fill: dict[str, str] | None = None, mapping=None,
) -> CleanResult:
    """Read, validate and clean one file (the CLI's `ftassist clean`). LoadError if unreadable.

    A record is kept exactly when the check counts it as a valid example (`check.iter_examples`);
    the others are dropped and listed with their error codes. `mapping` (`mapping.Mapping`, its dict or
    `--map` text) maps each record first, as the check does.
    """
    from ftassist.data.check import iter_examples
    from ftassist.data.diagnose import diagnose, recover_records, utf16_encoding
    from ftassist.data.load import iter_records
    from ftassist.data.mapping import Mapping
    from ftassist.data.report import Diagnosis

    path = Path(path)
    mapping = Mapping.of(mapping)
    if mapping is None and utf16_encoding(path) is None:
        from ftassist.data.check import _is_preference, peek

        first, records = peek(iter_records(path))
        if _is_preference(first):
            return clean_pairs_file(records, out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe,
                                    fill=fill)

    def read(records) -> tuple[list[Example], dict[int, list[str]], list]:
        invalid: dict[int, list[str]] = {}
        errors: list = []

        def drop(issue) -> None:
            if issue.severity == "error":
                invalid.setdefault(issue.line, []).append(issue.code)
                errors.append(issue)

        # materialise the examples first, so `invalid` is complete before clean_and_split lists it
        return list(iter_examples(records, drop, mapping)), invalid, errors

    utf16 = utf16_encoding(path)
    fix = Diagnosis("utf16_file", f"decoded from {utf16.upper()}", "", "file", 0, True) if utf16 else None
    n_records = 0
    exs: list[Example] = []
    invalid: dict[int, list[str]] = {}
    found: list = []
    errors: list = []
    if fix is None:
        def counted(records):
            nonlocal n_records
            for record in records:
                n_records += 1
                yield record

        exs, invalid, errors = read(counted(iter_records(path)))
        found = diagnose(path, n_records, errors)
        fix = next((d for d in found if d.fixable), None)
    n_before = len(exs)
    if fix is not None:
        exs, invalid, _ = read(recover_records(path, fix))
    try:
        result = clean_and_split(exs, invalid, out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe,
                                 fill=fill)
    except NothingToKeep as exc:
        raise NothingToKeep(f"{exc}{_why(fix, found, errors)}") from None
    if fix is not None:
        result.n_recovered = max(0, len(exs) - n_before)
        result.repaired = fix.message
    return result


# --------------------------------------------------------------------------- preference pairs


def trim_pair(pair: dict) -> dict:
    """A copy of a canonical pair with every text content stripped (prompt and both sides)."""
    out = dict(pair)
    for key in ("prompt", "chosen", "rejected"):
        out[key] = trim_chat({"messages": pair[key]})["messages"]
    return out


def pair_group_key(pair: dict) -> bytes:
    """The normalised prompt without its system message: pairs sharing it stay on one side of the split,
    so validation never asks a prompt training has seen (even under another system prompt)."""
    parts = [f"{m.get('role')}:{normalise_text(text_of(m.get('content')))}" for m in pair["prompt"]
             if isinstance(m, dict) and m.get("role") != "system"]
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def clean_pairs(pairs, invalid_lines: dict[int, list[str]] | None, out_dir: str | Path, *,
                valid_fraction: float = 0.1, seed: int = 42, dedupe: bool = True,
                fill: dict[str, str] | None = None) -> CleanResult:
    """Fix & split for preference pairs: trim, drop the pairs that cannot teach (invalid, an empty side, chosen
    the same as rejected, the same pair again: each listed in dropped.jsonl with its reason), and split so that
    no prompt is on both sides. Writes canonical pairs (train/valid/cleaned.jsonl: TRL conversational with an
    explicit prompt, what the DPO trainer reads) and the OpenAI DPO and ShareGPT exports of the whole set.

    `pairs` are `preferences.Pair`s in file order; `invalid_lines` maps each invalid record's line to its reasons.
    """
    from ftassist.data.preferences import PAIR_EXPORT_SUFFIX, pair_key, side_text, write_pairs

    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be at least 0 and below 1, got {valid_fraction}")
    out = Path(out_dir)
    res = CleanResult(folder=out, train_path=out / "train.jsonl", valid_path=out / "valid.jsonl",
                      dropped_path=out / "dropped.jsonl", all_path=out / "cleaned.jsonl", seed=seed,
                      valid_fraction=valid_fraction, kind="preference")
    dropped = [{"line": line, "reason": "invalid", "detail": ", ".join(map(str, reasons))}
               for line, reasons in sorted((invalid_lines or {}).items())]
    res.n_dropped_invalid = res.n_in = len(dropped)
    kept: list[tuple[int, dict]] = []
    seen: dict[bytes, int] = {}
    for item in pairs:
        res.n_in += 1
        pair = trim_pair(item.pair)
        if fill:
            pair.update({key: fill_placeholders({"messages": pair[key]}, fill)["messages"]
                         for key in ("prompt", "chosen", "rejected")})
        chosen, rejected = side_text(pair["chosen"]).strip(), side_text(pair["rejected"]).strip()
        if not chosen or not rejected:
            side = "both answers are" if not chosen and not rejected else \
                f"the {'chosen' if not chosen else 'rejected'} answer is"
            dropped.append({"line": item.line, "reason": "empty_answer", "detail": f"{side} empty after trimming"})
            res.n_dropped_empty += 1
            continue
        if chosen == rejected:
            dropped.append({"line": item.line, "reason": "identical",
                            "detail": "the chosen and the rejected answers are the same"})
            res.n_dropped_identical += 1
            continue
        if dedupe:
            key = pair_key(pair)
            first = seen.get(key)
            if first is not None:
                dropped.append({"line": item.line, "reason": "duplicate", "detail": f"the same pair as line {first}",
                                "duplicate_of": first})
                res.n_dropped_duplicates += 1
                continue
            seen[key] = item.line
        kept.append((item.line, pair))
    if not kept:
        parts = [f"{count:,} {what}" for count, what in (
            (res.n_dropped_invalid, "invalid"), (res.n_dropped_empty, "with an empty answer"),
            (res.n_dropped_identical, "with chosen = rejected"), (res.n_dropped_duplicates, "repeated")) if count]
        why = ("every pair would be dropped (" + ", ".join(parts) + ")") if parts else "the file holds no pair"
        raise NothingToKeep(f"Fix & split would keep no pair: {why}; nothing was written")
    out.mkdir(parents=True, exist_ok=True)
    by_prompt: dict[bytes, list[int]] = {}
    for i, (_, pair) in enumerate(kept):
        by_prompt.setdefault(pair_group_key(pair), []).append(i)
    valid = assign_split(list(by_prompt.values()), len(kept), valid_fraction, seed)
    with open(res.train_path, "wb") as ft, open(res.valid_path, "wb") as fv, open(res.all_path, "wb") as fa:
        for i, (_, pair) in enumerate(kept):
            row = orjson.dumps(pair) + b"\n"
            fa.write(row)
            if i in valid:
                fv.write(row)
                res.n_valid += 1
            else:
                ft.write(row)
                res.n_train += 1
    for fmt in ("openai_dpo", "sharegpt"):
        path = out / f"cleaned_{fmt}{PAIR_EXPORT_SUFFIX[fmt]}"
        res.exports[fmt] = path
        res.export_skipped[fmt] = len(kept) - write_pairs((pair for _, pair in kept), path, fmt)
    dropped.sort(key=lambda d: d["line"])
    with open(res.dropped_path, "wb") as fd:
        for d in dropped:
            fd.write(orjson.dumps(d) + b"\n")
    return res


def clean_pairs_file(records, out_dir: str | Path, *, valid_fraction: float = 0.1, seed: int = 42,
                     dedupe: bool = True, fill: dict[str, str] | None = None) -> CleanResult:
    """`clean_pairs` of a file's records: a pair is kept exactly when the check counts it as a valid pair."""
    from ftassist.data.preferences import iter_pairs

    invalid: dict[int, list[str]] = {}

    def drop(issue) -> None:
        if issue.severity == "error":
            invalid.setdefault(issue.line, []).append(issue.code)

    pairs = list(iter_pairs(records, drop))  # first, so `invalid` is complete before it is listed
    return clean_pairs(pairs, invalid, out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe, fill=fill)


def _why(fix, found: list, errors: list) -> str:
    """The file-level cause (or the most common error), for the refusal's message."""
    from ftassist.data.diagnose import group_issues

    if fix is not None:
        return f" (even after the fix: {fix.message})"
    if found:
        return f" — {found[0].message}; {found[0].hint}"
    if errors:
        group = max(group_issues(errors), key=lambda g: g.count)
        return f" — lines {group.lines}: {group.message}" + (f" ({group.hint})" if group.hint else "")
    return ""


__all__ = ["CleanResult", "NothingToKeep", "clean_and_split", "clean_file", "clean_pairs", "clean_pairs_file", "trim_chat", "exact_key", "group_key", "split_sizes"]
