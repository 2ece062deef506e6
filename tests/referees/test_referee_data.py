"""Data station checks against referees computed here by plain Python, never by the code under test."""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path

import pytest

from ftassist.data import check, clean


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(prompt: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


# -- 1. roles are case-sensitive, as OpenAI's validation is --------------------------------
def test_a_capitalised_role_is_rejected_with_its_line_number(tmp_path):
    rows = [chat("What is the capital of France?", "Paris."),
            {"messages": [{"role": "User", "content": "What is two plus two?"},
                          {"role": "assistant", "content": "Four."}]},
            chat("Name a primary colour.", "Red.")]
    report = check.check_path(write_jsonl(tmp_path / "roles.jsonl", rows))
    role_errors = [e for e in report.errors if e.code == "unrecognized_role"]
    assert [e.line for e in role_errors] == [2]  # the second line of the file, counted by hand
    assert "User" in role_errors[0].message
    assert not report.ok and report.n_examples == 2


# -- 2. near-duplicates: only pairs at or above the documented Jaccard 0.8 -----------------
def normalised_words(text: str) -> list[str]:
    """The checklist's documented normal form for near-duplicates: ASCII lowercase, punctuation
    and digits deleted, whitespace collapsed."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation + string.digits))
    return text.split()


def shingles(text: str) -> set[tuple[str, ...]]:
    """The documented shingles: word bigrams plus the first word."""
    words = normalised_words(text)
    return {("^", words[0])} | set(zip(words, words[1:]))


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def near_copy_pair(rng: random.Random, n: int, k: int) -> tuple[str, str]:
    """Two prompts of n distinct words; the second has its last k words replaced by new ones.
    Shared shingles: the first word and the n-k-1 bigrams of the kept words; so Jaccard =
    (n-k) / (n+k)."""
    letters = string.ascii_lowercase
    words: dict[str, None] = {}  # insertion order, not a set's: a set's order follows the process's hash seed
    while len(words) < n + k:
        words["".join(rng.choice(letters) for _ in range(7))] = None
    words = list(words)
    first = words[:n]
    second = words[: n - k] + words[n:]
    return " ".join(first) + "?", " ".join(second) + "?"


# (n, k) giving Jaccard (n-k)/(n+k) exactly: 31/9 -> 0.55, 33/7 -> 0.65, 14/2 -> 0.75, 37/3 -> 0.85,
# 19/1 -> 0.9, 39/1 -> 0.95
SHAPES = {0.55: (31, 9), 0.65: (33, 7), 0.75: (14, 2), 0.85: (37, 3), 0.9: (19, 1), 0.95: (39, 1)}
PAIRS_PER_LEVEL = 100


def pairs_at(rng: random.Random, target: float, count: int) -> list[dict]:
    n, k = SHAPES[target]
    rows = []
    for _ in range(count):
        a, b = near_copy_pair(rng, n, k)
        assert abs(jaccard(a, b) - target) < 1e-12  # the referee's own measure of the pair
        rows += [chat(a, f"Answer {len(rows)}."), chat(b, f"Answer {len(rows) + 1}.")]
    return rows


def reordered_pairs(rng: random.Random, count: int) -> list[dict]:
    """One bag of 30 words in two orders: unigram Jaccard 1, bigram Jaccard below 0.1."""
    rows = []
    for _ in range(count):
        a, _ = near_copy_pair(rng, 30, 0)
        words = a.rstrip("?").split()
        b = " ".join(words[::2] + words[1::2]) + "?"
        assert jaccard(a, b) < 0.1
        rows += [chat(a, f"Answer {len(rows)}."), chat(b, f"Answer {len(rows) + 1}.")]
    return rows


def near_duplicates_in(path: Path, rows: list[dict]) -> tuple[int, set[int]]:
    """(how many prompts the checklist counts as near-duplicates, the lines its evidence names)."""
    report = check.check_path(write_jsonl(path, rows))
    assert report.ok
    (diverse,) = [item for item in report.checklist if item.id == "diverse"]
    lines = {e["line"] for e in diverse.evidence if "near-duplicate" in e.get("note", "")}
    return diverse.details["n_near_duplicates"], lines


def test_near_duplicates_follow_the_documented_threshold_on_word_bigrams(tmp_path):
    """The checklist estimates Jaccard with a 32-bin MinHash, so a pair near 0.8 may land on either
    side. What must hold, over 100 pairs per similarity: (almost) nothing at 0.55, at most 1 in 10
    at 0.65, at least 85 in 100 at 0.9 and 97 at 0.95, more flagged the more alike (levels 0.1 apart), and the same
    words in another order (word bigrams, not a bag of words) never."""
    from ftassist.data.checklist import NEAR_DUP_JACCARD

    assert NEAR_DUP_JACCARD == 0.8  # the documented threshold the bands below are built around
    rng = random.Random(20261130)
    rates = {}
    for target in SHAPES:
        flagged, _ = near_duplicates_in(tmp_path / f"near_{target}.jsonl", pairs_at(rng, target, PAIRS_PER_LEVEL))
        rates[target] = flagged / PAIRS_PER_LEVEL
    reordered, _ = near_duplicates_in(tmp_path / "reordered.jsonl", reordered_pairs(rng, PAIRS_PER_LEVEL))
    assert reordered == 0
    assert rates[0.55] <= 0.02 and rates[0.65] <= 0.10, rates
    assert rates[0.9] >= 0.85 and rates[0.95] >= 0.97, rates
    # more flagged the more alike, between levels far enough apart that 100 pairs tell them apart
    for lower in SHAPES:
        for higher in SHAPES:
            if higher - lower >= 0.1 - 1e-9:
                assert rates[higher] >= rates[lower], (lower, higher, rates)


@pytest.mark.xfail(strict=True, reason="issue 18 finding: the 32-bin MinHash estimate is too coarse on prompts of "
                   "15-40 words (measured over 100-200 pairs per level: 0-1% flagged at Jaccard 0.55, 4-7% at 0.65, "
                   "35-46% at 0.75, only 76-86% at 0.85); remove this marker once candidates are verified more exactly")
def test_each_pair_is_judged_by_the_documented_threshold(tmp_path):
    """The documented rule, pair by pair: flagged exactly when Jaccard >= 0.8."""
    rng = random.Random(5)
    rows, expected = [], set()
    for target in (0.55, 0.65, 0.75, 0.85, 0.9):
        for _ in range(10):
            rows += pairs_at(rng, target, 1)
            if target >= 0.8:
                expected.add(len(rows))
    flagged, lines = near_duplicates_in(tmp_path / "pairs.jsonl", rows)
    assert flagged == len(expected) == 20 and lines == expected


# -- 3. the train/valid split keeps near-copies on one side --------------------------------
def referee_key(text: str) -> str:
    """Our own normal form: lowercase, punctuation stripped, whitespace collapsed."""
    text = re.sub(r"[^\w\s]|_", " ", text.lower())
    return " ".join(text.split())


def test_near_copies_never_straddle_the_split(tmp_path):
    rng = random.Random(7)
    topics = ["return an item", "reset a password", "track an order", "change an address", "cancel a plan",
              "update a card", "close an account", "find an invoice", "apply a coupon", "contact support"]
    rows = []
    for i in range(40):
        prompt = f"How do I {topics[i % 10]} for order number {i}?"
        answer = f"Open the {topics[i % 10].split()[-1]} page, pick order {i} and press Continue."
        rows.append(chat(prompt, answer))
        # the near-copy: other case, doubled spaces, other punctuation, same words
        copy_prompt = prompt.upper().replace(" ", "  ").replace("?", " ?!")
        copy_answer = answer.replace(",", "").replace(".", "!").lower()
        rows.append(chat(copy_prompt, copy_answer))
    for i in range(20):
        rows.append(chat(f"Singleton question {i}: what is {rng.randint(100, 999)} in words?", f"Singleton answer {i}."))
    rng.shuffle(rows)
    result = clean.clean_file(write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "out", valid_fraction=0.2,
                              seed=42)
    assert result.n_train + result.n_valid == 100 and result.n_dropped_duplicates == 0

    def keys(path: Path) -> list[str]:
        return [referee_key(json.loads(line)["messages"][0]["content"]) for line in path.read_text().splitlines()]

    train, valid = keys(result.train_path), keys(result.valid_path)
    assert len(set(train) | set(valid)) == 60  # 40 pairs + 20 singletons, by our own normal form
    assert not set(train) & set(valid), sorted(set(train) & set(valid))[:5]
    assert any(valid.count(key) == 2 for key in valid)  # a pair did land in validation, together
