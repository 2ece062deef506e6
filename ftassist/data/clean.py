"""The one-click fix: drop invalid records and duplicates, trim whitespace, split train/valid (and test).

A file of preference pairs gets the same fix as pairs (`clean_pairs`): pairs that cannot teach are
dropped with their reason, canonical pairs are written, and no prompt is on both sides of the split.

Why the split works on groups: a validation set only measures generalisation if none of its
examples is also in training. Exact duplicates are dropped first; then examples that share
the same *normalised* prompt and answer (case, spacing and punctuation aside, system prompt
ignored) are kept together on one side, so near-copies cannot leak across the split either.

The test split (optional, `test_fraction`) is held out the same way, by whole groups, from what validation
left: training never sees it and, unlike validation, no checkpoint is chosen by it, so the Evaluate step
measures on it by default. Validation is drawn first and exactly as without a test split, so adding one
never moves an example between train and valid that the same seed kept apart before.
"""

from __future__ import annotations

import hashlib
import random
from contextlib import ExitStack
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
    all_path: Path  # the whole cleaned set (train + valid + test, in source order), OpenAI chat JSONL
    exports: dict[str, Path] = field(default_factory=dict)  # "alpaca" / "sharegpt" -> path of the full set
    test_path: Path | None = None  # the held-out test split (None: no test split was written)
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
    n_test: int = 0
    test_fraction: float = 0.0  # the share asked for (after the automatic rule, when none was given)

    @property
    def n_kept(self) -> int:
        return self.n_train + self.n_valid + self.n_test

    @property
    def files(self) -> list[Path]:
        """Every file written, for downloads."""
        test = [self.test_path] if self.test_path is not None else []
        return [self.train_path, self.valid_path, *test, self.dropped_path, *self.exports.values()]

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
    return _take_groups([groups[g] for g in order], target, n)


def _take_groups(groups: list[list[int]], target: int, n_left: int) -> set[int]:
    """Whole groups, in the order given, up to `target` indices; when every group is bigger than the target,
    the smallest one that still leaves training (`n_left` examples to draw from) non-empty."""
    taken: set[int] = set()
    for members in groups:
        if len(taken) + len(members) <= target:
            taken.update(members)
            if len(taken) == target:
                break
    if not taken and groups:
        smallest = min(groups, key=len)
        if len(smallest) < n_left:
            taken.update(smallest)
    return taken


AUTO_TEST_MIN = 200  # examples (or pairs) kept before Fix & split holds out a test split unasked
AUTO_TEST_FRACTION = 0.1


def share_for_test(n_kept: int, test_fraction: float | None) -> float:
    """The test split's share: the one asked for, or (None) 10% once 200 examples are kept and none below,
    so a small dataset keeps its few examples for training, and a test split is big enough to tell models apart."""
    if test_fraction is None:
        return AUTO_TEST_FRACTION if n_kept >= AUTO_TEST_MIN else 0.0
    return float(test_fraction)


def check_fractions(valid_fraction: float, test_fraction: float | None) -> None:
    """ValueError unless both shares are at least 0 and together leave something to train on."""
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be at least 0 and below 1, got {valid_fraction}")
    if test_fraction is not None and not (0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(f"test_fraction must be at least 0 and, with valid_fraction {valid_fraction}, below 1; "
                         f"got {test_fraction}")


def assign_test(groups: list[list[int]], n: int, test_fraction: float, seed: int, valid: set[int]) -> set[int]:
    """Indices that go to the test split: whole groups that are not in `valid`, in their own seeded order, up to
    round(n * test_fraction) (at least 1), always leaving training at least one example."""
    free = [members for members in groups if members[0] not in valid]  # groups are whole: one member says it
    n_left = n - len(valid)
    if n_left < 2 or test_fraction <= 0:
        return set()
    target = min(max(1, round(n * test_fraction)), n_left - 1)
    random.Random(f"{seed}:test").shuffle(free)
    return _take_groups(free, target, n_left)


def _write_split(res: CleanResult, rows: Iterable[bytes], valid: set[int], test: set[int]) -> None:
    """train/valid(/test).jsonl and the whole set (cleaned.jsonl), each row where the split put it; the counts
    into `res`. A folder written again keeps no stale test split."""
    test_path = res.folder / "test.jsonl"
    if test:
        res.test_path = test_path
    else:
        test_path.unlink(missing_ok=True)
    with ExitStack() as stack:
        train, valid_file, whole = (stack.enter_context(open(path, "wb"))
                                    for path in (res.train_path, res.valid_path, res.all_path))
        test_file = stack.enter_context(open(test_path, "wb")) if test else None
        for i, row in enumerate(rows):
            whole.write(row)
            if i in valid:
                valid_file.write(row)
                res.n_valid += 1
            elif i in test:
                test_file.write(row)
                res.n_test += 1
            else:
                train.write(row)
                res.n_train += 1


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
    test_fraction: float | None = 0.0,
) -> CleanResult:
    """Write train.jsonl / valid.jsonl (/ test.jsonl) (OpenAI chat), cleaned.jsonl, alpaca + sharegpt exports
    of the whole set, dropped.jsonl.

    `examples` are the valid records (converted to canonical chat); `invalid_lines` maps the
    line of each invalid record to its reasons (error codes or messages), listed as dropped.
    `test_fraction`: the share held out as the test split (None: `share_for_test`'s automatic rule).
    """
    check_fractions(valid_fraction, test_fraction)
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
    groups = list(by_key.values())
    valid = assign_split(groups, len(kept), valid_fraction, seed)
    res.test_fraction = share_for_test(len(kept), test_fraction)
    test = assign_test(groups, len(kept), res.test_fraction, seed, valid)
    _write_split(res, (orjson.dumps(chat_to_openai(chat)) + b"\n" for _, chat in kept), valid, test)

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
    fill: dict[str, str] | None = None, mapping=None, test_fraction: float | None = 0.0,
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
    if mapping is not None and mapping.pairs:
        return clean_pairs_file(iter_records(path), out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe,
                                fill=fill, test_fraction=test_fraction, mapping=mapping)
    if mapping is None and utf16_encoding(path) is None:
        from ftassist.data.check import _is_preference, peek

        first, records = peek(iter_records(path))
        if _is_preference(first):
            return clean_pairs_file(records, out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe,
                                    fill=fill, test_fraction=test_fraction)

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
    applied = [fix] if fix is not None else []
    if fix is not None:
        exs, invalid, _ = read(recover_records(path, fix, applied))  # an encoding's fix may bring a second one
    try:
        result = clean_and_split(exs, invalid, out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe,
                                 fill=fill, test_fraction=test_fraction)
    except NothingToKeep as exc:
        raise NothingToKeep(f"{exc}{_why(fix, found, errors)}") from None
    if fix is not None:
        result.n_recovered = max(0, len(exs) - n_before)
        result.repaired = "; then ".join(cause.message for cause in applied)
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
                fill: dict[str, str] | None = None, test_fraction: float | None = 0.0) -> CleanResult:
    """Fix & split for preference pairs: trim, drop the pairs that cannot teach (invalid, an empty side, chosen
    the same as rejected, the same pair again: each listed in dropped.jsonl with its reason), and split so that
    no prompt is on any two sides (train, validation, test). Writes canonical pairs (train/valid(/test)/cleaned.jsonl:
    TRL conversational with an explicit prompt, what the DPO trainer reads) and the OpenAI DPO and ShareGPT exports
    of the whole set.

    `pairs` are `preferences.Pair`s in file order; `invalid_lines` maps each invalid record's line to its reasons.
    """
    from ftassist.data.preferences import PAIR_EXPORT_SUFFIX, pair_key, side_text, write_pairs

    check_fractions(valid_fraction, test_fraction)
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
    groups = list(by_prompt.values())
    valid = assign_split(groups, len(kept), valid_fraction, seed)
    res.test_fraction = share_for_test(len(kept), test_fraction)
    test = assign_test(groups, len(kept), res.test_fraction, seed, valid)
    _write_split(res, (orjson.dumps(pair) + b"\n" for _, pair in kept), valid, test)
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
                     dedupe: bool = True, fill: dict[str, str] | None = None,
                     test_fraction: float | None = 0.0, mapping=None) -> CleanResult:
    """`clean_pairs` of a file's records: a pair is kept exactly when the check counts it as a valid pair
    (through the same pair `mapping`, when the records name their parts otherwise)."""
    from ftassist.data.mapping import map_records
    from ftassist.data.preferences import iter_pairs

    invalid: dict[int, list[str]] = {}

    def drop(issue) -> None:
        if issue.severity == "error":
            invalid.setdefault(issue.line, []).append(issue.code)

    if mapping is not None:
        records = map_records(records, mapping, drop)

    pairs = list(iter_pairs(records, drop))  # first, so `invalid` is complete before it is listed
    return clean_pairs(pairs, invalid, out_dir, valid_fraction=valid_fraction, seed=seed, dedupe=dedupe, fill=fill,
                       test_fraction=test_fraction)


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


__all__ = ["CleanResult", "NothingToKeep", "clean_and_split", "clean_file", "clean_pairs", "clean_pairs_file", "trim_chat", "exact_key", "group_key", "split_sizes", "share_for_test"]
