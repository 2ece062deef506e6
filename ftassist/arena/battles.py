"""Blind battles and votes: the core of the arena, with no web code in it.

A battle is one prompt and two stored answers (`model_a`, `model_b`), generated ahead of
time so that voters never wait. Serving a battle creates a *serve*: an opaque random
token, the voter it was given to, and whether the two sides are shown swapped. Only the
token, the prompt and the two answers ever leave this module before a vote
(`BattleView`); the side mapping stays in DuckDB, keyed by the token, so no page or API
payload can carry a model's identity. `vote` maps the clicked side back to the stored
battle, records the winner as FastChat does (`model_a | model_b | tie | tie (bothbad)`),
once per voter per battle (UNIQUE in the table, committed on insert), and only then
returns the names (`Reveal`).

Noise and abuse, after FastChat: answers that name a model or its maker flag the battle
(its votes stay stored but are left out of the ratings); a per-voter rate limit; voters
whose votes agree with the other voters far less often than everyone else's do are
flagged for review (binomial test), never silently dropped.

A public arena adds the rules of `limits.VotingRules`, applied when the caller passes them
(the use cases always do): the voter's hashed client address beside the voter id, limits per
address, the reading time, the one-sided burst test, the daily caps and the day's one-sided test,
own-prompt budgets and review, and the compaction of expired serves and skips so that anonymous
rounds leave no unbounded trail.
Without rules (station tests, tools) each function behaves as it did before them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import secrets
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable

from ftassist.arena import limits
from ftassist.arena.limits import VotingRules

log = logging.getLogger(__name__)

CHOICES = ("A", "B", "tie", "bothbad")
MAX_PROMPT_CHARS = 4000
DEFAULT_VOTES_PER_MINUTE = 30
RATE_LIMIT_ENV = "FTASSIST_ARENA_VOTES_PER_MINUTE"

# Names and makers that give a model away (FastChat's list, trimmed of common words).
IDENTITY_PATTERNS = [
    r"chat\s?gpt", r"\bgpt[-\s]?\d", r"\bgpt\b", r"open\s?ai", r"\bclaude\b", r"anthropic", r"\bllama",
    r"\bqwen", r"alibaba", r"\bmistral", r"mixtral", r"\bgemma\b", r"\bgemini\b", r"deepmind",
    r"deepseek", r"\bvicuna\b", r"\blmsys\b", r"\bphi-\d", r"\bcohere\b", r"\bfalcon\b", r"\bzephyr\b",
]
# "Meta" is only a maker when capitalised ("meta-analysis" and "metadata" are not).
CASE_SENSITIVE_PATTERNS = [r"\bMeta\b(?![-\w])", r"\bMeta AI\b"]
# Display names this generic would flag ordinary text, so they are not searched for.
GENERIC_NAMES = {
    "a", "b", "base", "baseline", "model", "models", "tuned", "fine-tuned", "finetuned", "fine tuned",
    "assistant", "default", "new", "old", "ours", "chat", "instruct", "candidate", "reference", "test",
}


class VoteError(ValueError):
    """A vote or serve that cannot be done; the message is safe to show to the voter."""


class RateLimited(VoteError):
    """Too many votes from one voter in the last minute."""


@dataclass
class BattleView:
    """What a voter may see before voting: nothing that names a model."""

    token: str
    prompt: str
    answer_a: str
    answer_b: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reveal:
    """What a voter sees after voting: who wrote the left (A) and right (B) answers."""

    model_a: str
    model_b: str
    choice: str
    winner: str  # relative to the stored battle: model_a | model_b | tie | tie (bothbad)
    already_voted: bool = False
    flagged: bool = False
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# -- identity leaks --------------------------------------------------------------------------------
def _registered_names(store) -> list[str]:
    names: set[str] = set()
    for model_id, display_name, config_json in store.query_rows(
        "SELECT id, display_name, config_json FROM arena_models"
    ):
        names.update([model_id, display_name])
        try:
            config = json.loads(config_json or "{}")
        except ValueError:
            config = {}
        for key in ("model", "base_model"):
            value = config.get(key)
            if isinstance(value, str) and value:
                names.add(value.rstrip("/").split("/")[-1])  # "Qwen/Qwen2.5-0.5B" -> "Qwen2.5-0.5B"
    return sorted(n for n in names if n and len(n) >= 3 and n.strip().lower() not in GENERIC_NAMES)


def identity_leak(texts: Iterable[str], extra_names: Iterable[str] = ()) -> str | None:
    """The first model name or maker found in `texts` (as a reason string), or None."""
    for text in texts:
        text = text or ""
        for pattern in IDENTITY_PATTERNS:
            found = re.search(pattern, text, re.IGNORECASE)
            if found:
                return f"an answer mentions {found.group(0)!r}"
        for pattern in CASE_SENSITIVE_PATTERNS:
            found = re.search(pattern, text)
            if found:
                return f"an answer mentions {found.group(0)!r}"
        for name in extra_names:
            if re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", text, re.IGNORECASE):
                return f"an answer mentions the model name {name!r}"
    return None


def _flag_reason(answer_a: str, answer_b: str, names: list[str]) -> str | None:
    if not (answer_a or "").strip() or not (answer_b or "").strip():
        return "an answer is empty"
    return identity_leak([answer_a, answer_b], names)


def reflag_battles(store) -> int:
    """Re-check every battle against the current names (after registering a model);
    returns how many battles are flagged now."""
    names = _registered_names(store)
    rows = store.query_rows("SELECT id, answer_a, answer_b FROM battles")
    updates = [[_flag_reason(a, b, names), bid] for bid, a, b in rows]
    store.executemany("UPDATE battles SET flagged_reason = ? WHERE id = ?", updates)
    return sum(1 for reason, _ in updates if reason)


# -- creating battles ----------------------------------------------------------------------------
def add_battle(store, prompt: str, model_a: str, model_b: str, answer_a: str, answer_b: str,
               sampling: dict | None = None, reference: str | None = None, source: str = "pregenerated") -> str:
    """Store one battle from answers already generated; returns its id.

    The battle is flagged at once when an answer is empty or gives a model away.
    """
    if model_a == model_b:
        raise ValueError("A battle needs two different models.")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("A battle needs a non-empty prompt.")
    battle_id = uuid.uuid4().hex
    reason = _flag_reason(answer_a, answer_b, _registered_names(store))
    store.execute(
        "INSERT INTO battles (id, prompt, model_a, model_b, answer_a, answer_b, sampling_json, reference,"
        " flagged_reason, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [battle_id, prompt, model_a, model_b, answer_a or "", answer_b or "",
         json.dumps(sampling or {}, sort_keys=True), reference, reason, source],
    )
    return battle_id


def _prompt_text(prompt: Any) -> str:
    """Battles store the prompt as text: a message list is reduced to its last user turn."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users and isinstance(users[-1], str):
            return users[-1]
    raise ValueError("a prompt is a string or a list of chat messages with a user turn")


def load_prompts(path: str | Path, n: int | None = None, seed: int = 0) -> list[dict]:
    """Prompts for pre-generation: [{"prompt", "reference"}...].

    `.txt`: one prompt per line. `.jsonl`/`.json`: chat examples (`messages`: the last user
    turn before the final assistant turn is the prompt, that assistant turn the reference),
    or objects with `prompt` (and optional `reference`/`completion`/`response`). `n` picks a
    random sample of that many (seeded), e.g. from the validation split.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No prompt file at {path}.")
    items: list[dict] = []
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".txt":
        items = [{"prompt": line.strip(), "reference": None} for line in text.splitlines() if line.strip()]
    else:
        rows = json.loads(text) if path.suffix.lower() == ".json" else None
        if rows is None:
            rows = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"{path}: line {number} is not JSON ({exc.msg}).") from None
        for row in rows:
            item = _prompt_from_row(row)
            if item:
                items.append(item)
    if not items:
        raise ValueError(f"No prompts found in {path}.")
    if n is not None and n < len(items):
        items = random.Random(seed).sample(items, n)
    return items


def _prompt_from_row(row: Any) -> dict | None:
    if isinstance(row, str):
        return {"prompt": row, "reference": None}
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("messages"), list):
        messages = [m for m in row["messages"] if isinstance(m, dict)]
        reference = None
        if messages and messages[-1].get("role") == "assistant":
            reference = messages[-1].get("content")
            messages = messages[:-1]
        try:
            return {"prompt": _prompt_text(messages), "reference": reference}
        except ValueError:
            return None
    prompt = row.get("prompt") or row.get("instruction") or row.get("question")
    if isinstance(prompt, list):
        try:
            prompt = _prompt_text(prompt)
        except ValueError:
            return None
    if isinstance(prompt, str) and prompt.strip():
        if row.get("input"):
            prompt = f"{prompt}\n\n{row['input']}"
        ref = row.get("reference") or row.get("completion") or row.get("response") or row.get("output")
        return {"prompt": prompt, "reference": ref if isinstance(ref, str) else None}
    return None


def pregenerate(store, prompts: list[dict | str], model_ids: list[str], sampling: dict | None = None,
                progress=None) -> dict[str, Any]:
    """Generate every model's answer to every prompt and store a battle for each prompt
    and each pair of models. Returns {"battles", "flagged", "errors"}.

    A prompt where one model failed makes no battle for that model's pairs; the error is
    reported (never raised), so one bad prompt does not sink a long run.
    """
    from ftassist.arena import models as arena_models

    if len(set(model_ids)) < 2:
        raise ValueError("Pick at least two different models to compare.")
    items = [p if isinstance(p, dict) else {"prompt": p, "reference": None} for p in prompts]
    texts = [_prompt_text(item["prompt"]) for item in items]
    answers: dict[str, list[dict]] = {}
    for number, model_id in enumerate(model_ids, start=1):
        if progress:
            progress(number - 1, len(model_ids), f"generating with model {number}/{len(model_ids)}")
        answers[model_id] = arena_models.generate(store, model_id, texts, sampling)
    created, flagged, errors = 0, 0, []
    for model_a, model_b in combinations(model_ids, 2):
        for i, text in enumerate(texts):
            ra, rb = answers[model_a][i], answers[model_b][i]
            failed = [(m, r["error"]) for m, r in ((model_a, ra), (model_b, rb)) if r.get("error")]
            if failed:
                errors.extend({"prompt": i, "model": m, "error": e} for m, e in failed)
                continue
            battle_id = add_battle(store, text, model_a, model_b, ra["text"], rb["text"],
                                   sampling=ra.get("sampling"), reference=items[i].get("reference"),
                                   source="pregenerated")
            created += 1
            if store.query_rows("SELECT flagged_reason FROM battles WHERE id = ?", [battle_id])[0][0]:
                flagged += 1
    if progress:
        progress(len(model_ids), len(model_ids), "done")
    return {"battles": created, "flagged": flagged, "errors": errors}


# -- serving and voting ----------------------------------------------------------------------------
def _serve(store, battle_id: str, prompt: str, answer_a: str, answer_b: str, voter: str,
           address: str | None = None, now: float | None = None) -> BattleView:
    token = secrets.token_urlsafe(18)
    swapped = secrets.randbelow(2) == 1
    store.execute(
        "INSERT INTO battle_serves (token, battle_id, voter, swapped, address_hash, served_epoch)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [token, battle_id, voter, swapped, address, time.time() if now is None else now],
    )
    left, right = (answer_b, answer_a) if swapped else (answer_a, answer_b)
    return BattleView(token=token, prompt=prompt, answer_a=left, answer_b=right)


def next_battle(store, voter: str, *, address: str | None = None, rules: VotingRules | None = None,
                now: float | None = None) -> BattleView | None:
    """A random unflagged battle between models still in the arena that this voter has neither
    voted on nor skipped, sides in a random order; None when there is none left.

    A voter's own prompt is served to others only once the admin approved it (never, when the rules
    say so). With `rules`: rounds are refused past the per-voter and per-address rates (RateLimited),
    and expired serves and skips are compacted now and then.
    """
    _check_voter(voter)
    now = time.time() if now is None else now
    if rules is not None:
        check_round(voter, address, rules)
        maybe_compact(store, rules, now)
    shared = "FALSE" if rules is not None and rules.voter_prompts == "never" else "b.review = 'approved'"
    rows = store.query_rows(
        "SELECT id, prompt, answer_a, answer_b FROM battles b WHERE b.flagged_reason IS NULL"
        f" AND (b.source IS DISTINCT FROM 'voter' OR {shared})"
        " AND NOT EXISTS (SELECT 1 FROM arena_models m WHERE m.id IN (b.model_a, b.model_b)"
        " AND m.removed_at IS NOT NULL)"
        # nor one this person voted on as a linked voter (anonymously before signing in, or the reverse)
        f" AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.battle_id = b.id AND (v.voter = ? OR v.voter IN {_LINKED}))"
        " AND NOT EXISTS (SELECT 1 FROM battle_skips s WHERE s.battle_id = b.id AND s.voter = ?)"
        " ORDER BY random() LIMIT 1",
        [voter, voter, voter, voter],
    )
    if not rows:
        return None
    return _serve(store, *rows[0], voter=voter, address=address, now=now)


def check_round(voter: str, address: str | None, rules: VotingRules) -> None:
    """Refuse a new round (or skip) past the per-voter or per-address rate (RateLimited)."""
    wait = limits.windows.allow(f"round:voter:{voter}", rules.rounds_per_minute)
    if not wait and address:
        wait = limits.windows.allow(f"round:address:{address}", rules.rounds_per_minute_per_address)
    if wait:
        raise RateLimited(f"Too many new rounds in a minute: take your time with each battle; "
                          f"try again in {math.ceil(wait)} s.")


def _check_voter(voter: str) -> None:
    if not isinstance(voter, str) or not voter.strip() or len(voter) > 200:
        raise VoteError("No voter id: reload the page to start a session.")


class RateLimiter:
    """Sliding one-minute window of accepted votes per voter (in memory: the app is one process)."""

    def __init__(self, per_minute: int | None = None, env: str = RATE_LIMIT_ENV,
                 default: int = DEFAULT_VOTES_PER_MINUTE, what: str = "votes"):
        self.per_minute = per_minute
        self.env, self.default, self.what = env, default, what
        self._times: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def limit(self) -> int:
        if self.per_minute is not None:
            return self.per_minute
        try:
            return int(os.environ.get(self.env, self.default))
        except ValueError:
            return self.default

    def check(self, voter: str, now: float | None = None) -> None:
        """Raise RateLimited when `voter` is at the limit; else count this vote."""
        limit = self.limit()
        if limit <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._times[voter]
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= limit:
                wait = max(1, int(60 - (now - times[0])) + 1)
                if self.what == "votes":
                    raise RateLimited(
                        f"You are voting very fast ({limit} votes a minute at most). "
                        f"Please read both answers; you can vote again in {wait} s."
                    )
                raise RateLimited(f"At most {limit} {self.what} a minute: try again in {wait} s.")
            times.append(now)

    def reset(self) -> None:
        with self._lock:
            self._times.clear()


rate_limiter = RateLimiter()
# Own prompts cost generation (money, for API models): a tighter limit of their own.
prompt_limiter = RateLimiter(env="FTASSIST_ARENA_PROMPTS_PER_MINUTE", default=5, what="own prompts")


def _winner(choice: str, swapped: bool) -> str:
    if choice == "tie":
        return "tie"
    if choice == "bothbad":
        return "tie (bothbad)"
    left_won = choice == "A"
    return "model_b" if left_won == swapped else "model_a"


def vote(store, token: str, voter: str, choice: str, *, address: str | None = None,
         rules: VotingRules | None = None, now: float | None = None) -> Reveal:
    """Record `voter`'s choice on the battle served under `token` and reveal the names.

    choice: "A" (left is better), "B", "tie" or "bothbad". A second vote on the same
    battle changes nothing and says so (`already_voted`). Raises VoteError (or its
    RateLimited) with a message fit for the voter.

    A vote on a voter's own prompt that the admin has not approved is kept but flagged. With
    `rules`, so is a vote cast before the reading time, one past the address's rate or past a daily
    cap, and every vote of a one-sided burst (`_flag_burst`) or of a one-sided day (`_flag_day`); the
    voter is told when a vote does not count.
    """
    _check_voter(voter)
    if choice not in CHOICES:
        raise VoteError(f"Unknown choice {choice!r}: use one of {', '.join(CHOICES)}.")
    now = time.time() if now is None else now
    with store.transaction() as con:
        serve = con.execute(
            "SELECT s.battle_id, s.voter, s.swapped, b.model_a, b.model_b, b.flagged_reason,"
            " coalesce(ma.display_name, b.model_a), coalesce(mb.display_name, b.model_b),"
            " s.served_epoch, b.source, b.review"
            " FROM battle_serves s JOIN battles b ON b.id = s.battle_id"
            " LEFT JOIN arena_models ma ON ma.id = b.model_a LEFT JOIN arena_models mb ON mb.id = b.model_b"
            " WHERE s.token = ?",
            [token or ""],
        ).fetchall()
        if not serve:
            raise VoteError("This battle is not known (the link may be old): start a new round.")
        (battle_id, served_to, swapped, model_a, model_b, flagged, name_a, name_b,
         served_epoch, source, review) = serve[0]
        if served_to != voter:
            raise VoteError("This battle was served to another session: start a new round.")
        existing = con.execute(
            "SELECT winner, choice FROM votes WHERE battle_id = ? AND voter = ?", [battle_id, voter]
        ).fetchall()
        reasons: list[str] = []
        if not existing:
            rate_limiter.check(voter)
            winner = _winner(choice, bool(swapped))
            if source == "voter" and review != "approved":
                reasons.append(REJECTED if review == "rejected" else AWAITING_REVIEW)
            if _linked_voter_voted(con, battle_id, voter):
                reasons.append(LINKED_VOTER)
            if rules is not None:
                reasons += _rule_reasons(rules, address, served_epoch, now)
                if not reasons:
                    reasons += _daily_cap_reasons(con, rules, voter, address, now)
            # The store's lock is held for the whole transaction, so the check above cannot
            # race; UNIQUE (battle_id, voter) in the table is the backstop.
            vote_id = uuid.uuid4().hex
            con.execute(
                "INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, source, choice,"
                " flagged_reason, address_hash, voted_epoch) VALUES (?, ?, ?, ?, ?, ?, 'arena', ?, ?, ?, ?)",
                [vote_id, battle_id, voter, model_a, model_b, winner, choice, "; ".join(reasons) or None,
                 address, now],
            )
            if rules is not None and winner in ("model_a", "model_b"):
                favoured = model_a if winner == "model_a" else model_b
                burst = _flag_burst(con, rules, favoured, voter, address, now)
                if burst and not reasons:
                    reasons.append(burst)
                other = model_b if favoured == model_a else model_a
                day = _flag_day(con, rules, favoured, other, voter, address, now)
                if day and not reasons:
                    reasons.append(day)
    left_name, right_name = (name_b, name_a) if swapped else (name_a, name_b)
    if existing:
        old_winner, old_choice = existing[0]
        return Reveal(left_name, right_name, old_choice or choice, old_winner, already_voted=True,
                      flagged=bool(flagged), message="You already voted on this battle; your first vote stands.")
    message = "Thanks, your vote is recorded."
    if flagged:
        message += " (This battle is flagged because an answer gives a model away, so it does not count.)"
    elif reasons:
        message += f" It does not count toward the ratings: {_voter_words(reasons[0])}"
    return Reveal(left_name, right_name, choice, winner, flagged=bool(flagged or reasons), message=message)


# the voters linked to a voter (its two ? are that voter): the aliases of an account, or the account of an alias
_LINKED = "(SELECT alias FROM voter_links WHERE account = ? UNION SELECT account FROM voter_links WHERE alias = ?)"


def _linked_voter_voted(con, battle_id: str, voter: str) -> bool:
    """Whether the same person already voted on this battle as a linked voter: anonymously before signing
    in, or signed in before signing out (`voters.link_alias`). `next_battle` does not serve such a battle; a
    vote on one served before the link was made is kept but flagged, not refused."""
    return bool(con.execute(f"SELECT 1 FROM votes v WHERE v.battle_id = ? AND v.voter IN {_LINKED} LIMIT 1",
                            [battle_id, voter, voter]).fetchall())


AWAITING_REVIEW = "own prompt awaiting review"
LINKED_VOTER = "already voted as a linked voter"
REJECTED = "own prompt rejected"
TOO_FAST = "too fast"
ADDRESS_RATE = "address rate"
BURST = "one-sided burst"
DAILY_CAP = "daily cap"
ONE_SIDED_DAY = "one-sided day"


def _voter_words(reason: str) -> str:
    """What a flag reason means, said to the voter."""
    if reason.startswith(TOO_FAST):
        return "it came before you could have read both answers. Please read them, then vote."
    if reason.startswith(ADDRESS_RATE):
        return "too many votes are coming from your network right now."
    if reason.startswith(BURST):
        return "it is part of a run of very one-sided votes, kept for the arena's owner to review."
    if reason.startswith(DAILY_CAP):
        return "today's votes that count are used up for you or your network. Thank you; come back tomorrow."
    if reason.startswith(ONE_SIDED_DAY):
        return ("today's votes from you or your network are far more one-sided than other voters', so they are "
                "kept for the arena's owner to review.")
    if reason.startswith(LINKED_VOTER):
        return "you already voted on this battle from this browser, signed in or not; your first vote stands."
    if reason.startswith(AWAITING_REVIEW):
        return "your own question counts once the arena's owner has reviewed it."
    return "the arena's owner did not accept this question."


def _rule_reasons(rules: VotingRules, address: str | None, served_epoch: float | None, now: float) -> list[str]:
    reasons = []
    if served_epoch is not None and rules.min_read_seconds > 0:
        elapsed = now - served_epoch
        if elapsed < rules.min_read_seconds:
            reasons.append(f"{TOO_FAST}: voted {max(0.0, elapsed):.1f} s after the answers appeared "
                           f"(reading time {rules.min_read_seconds:g} s)")
    if address and limits.windows.allow(f"vote:address:{address}", rules.votes_per_minute_per_address):
        reasons.append(f"{ADDRESS_RATE}: over {rules.votes_per_minute_per_address} votes a minute from one address")
    return reasons


def _flag_burst(con, rules: VotingRules, favoured: str, voter: str, address: str | None, now: float) -> str | None:
    """Flag the recent votes for `favoured` from this address (or voter) when they form a one-sided
    burst (`limits.one_sided_burst`), compared with what every other voter says of that model.
    Returns the reason when it did."""
    since = now - rules.burst_window_seconds
    for column, key in (("address_hash", address), ("voter", voter)):
        if not key:
            continue
        (k, n), = con.execute(
            "SELECT count(*) FILTER (WHERE (winner = 'model_a' AND model_a = ?) OR (winner = 'model_b' AND model_b = ?)),"
            f" count(*) FROM votes WHERE {column} = ? AND voted_epoch >= ? AND source = 'arena'"
            " AND winner IN ('model_a', 'model_b') AND ? IN (model_a, model_b)",
            [favoured, favoured, key, since, favoured],
        ).fetchall()
        if n < max(1, rules.burst_min_votes):
            continue
        (crowd_wins, crowd_n), = con.execute(
            "SELECT count(*) FILTER (WHERE (winner = 'model_a' AND model_a = ?) OR (winner = 'model_b' AND model_b = ?)),"
            f" count(*) FROM votes WHERE {column} IS DISTINCT FROM ? AND flagged_reason IS NULL"
            " AND winner IN ('model_a', 'model_b') AND ? IN (model_a, model_b)",
            [favoured, favoured, key, favoured],
        ).fetchall()
        if limits.one_sided_burst(k, n, crowd_wins, crowd_n, rules):
            reason = (f"{BURST}: {k} of {n} votes for one model within {rules.burst_window_seconds:g} s "
                      f"from one {'address' if column == 'address_hash' else 'voter'}")
            con.execute(
                f"UPDATE votes SET flagged_reason = ? WHERE {column} = ? AND voted_epoch >= ?"
                " AND flagged_reason IS NULL AND source = 'arena'"
                " AND ((winner = 'model_a' AND model_a = ?) OR (winner = 'model_b' AND model_b = ?))",
                [reason, key, since, favoured, favoured],
            )
            return reason
    return None


def _daily_cap_reasons(con, rules: VotingRules, voter: str, address: str | None, now: float) -> list[str]:
    """The daily caps (after FastChat's): a vote past the counted votes one voter, or one address, may cast in
    the last 24 hours is kept but flagged. Only counted votes use up a cap."""
    since = now - limits.DAY_S
    for column, key, cap, who in (("voter", voter, rules.votes_per_day_per_voter, "voter"),
                                  ("address_hash", address, rules.votes_per_day_per_address, "address")):
        if not key or cap <= 0:
            continue
        (counted,), = con.execute(
            f"SELECT count(*) FROM votes WHERE {column} = ? AND voted_epoch >= ? AND flagged_reason IS NULL"
            " AND source = 'arena'", [key, since]).fetchall()
        if counted >= cap:
            return [f"{DAILY_CAP}: over {cap} counted votes in a day from one {who}"]
    return []


_WINS = "count(*) FILTER (WHERE (winner = 'model_a' AND model_a = ?) OR (winner = 'model_b' AND model_b = ?))"
_PAIR = "winner IN ('model_a', 'model_b') AND ((model_a = ? AND model_b = ?) OR (model_a = ? AND model_b = ?))"


def _flag_day(con, rules: VotingRules, favoured: str, other: str, voter: str, address: str | None,
              now: float) -> str | None:
    """Flag this address's (or voter's) decisive votes of the last day for `favoured` against `other` when,
    taken together, they are far more one-sided than what every other voter says of that pair
    (`limits.one_sided_day`): the stuffer who votes slowly, under every rate and outside any burst.
    Returns the reason when it did."""
    since = now - limits.DAY_S
    for column, key in (("address_hash", address), ("voter", voter)):
        if not key:
            continue
        (k, n), = con.execute(
            f"SELECT {_WINS}, count(*) FROM votes WHERE {column} = ? AND voted_epoch >= ? AND source = 'arena'"
            f" AND {_PAIR}", [favoured, favoured, key, since, favoured, other, other, favoured]).fetchall()
        if n < max(1, rules.daily_min_votes):
            continue
        (crowd_wins, crowd_n), = con.execute(
            f"SELECT {_WINS}, count(*) FROM votes WHERE {column} IS DISTINCT FROM ? AND flagged_reason IS NULL"
            f" AND {_PAIR}", [favoured, favoured, key, favoured, other, other, favoured]).fetchall()
        if limits.one_sided_day(k, n, crowd_wins, crowd_n, rules):
            reason = (f"{ONE_SIDED_DAY}: {k} of {n} votes on one pair for one model within a day from one "
                      f"{'address' if column == 'address_hash' else 'voter'} (other voters: "
                      f"{crowd_wins} of {crowd_n})")
            con.execute(
                f"UPDATE votes SET flagged_reason = ? WHERE {column} = ? AND voted_epoch >= ?"
                " AND flagged_reason IS NULL AND source = 'arena'"
                " AND ((winner = 'model_a' AND model_a = ? AND model_b = ?)"
                " OR (winner = 'model_b' AND model_b = ? AND model_a = ?))",
                [reason, key, since, favoured, other, favoured, other],
            )
            return reason
    return None


def skip(store, token: str, voter: str, now: float | None = None) -> None:
    """Do not show this battle to this voter again (no vote recorded); the skip and the serve it
    ends are forgotten after their time to live (`compact`)."""
    _check_voter(voter)
    rows = store.query_rows("SELECT battle_id, voter FROM battle_serves WHERE token = ?", [token or ""])
    if not rows or rows[0][1] != voter:
        raise VoteError("This battle is not known for this session: start a new round.")
    store.execute(
        "INSERT INTO battle_skips (battle_id, voter, skipped_epoch) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        [rows[0][0], voter, time.time() if now is None else now],
    )


# -- keeping the logs bounded ------------------------------------------------------------------------
_last_compaction: dict[int, float] = {}


def compact(store, rules: VotingRules, now: float | None = None) -> dict[str, int]:
    """Delete what anonymous rounds leave behind once it is no use: serves older than their time to live
    that got no vote (a vote keeps its serve), skips older than theirs, and own-prompt call records older
    than the daily budget's window. Returns how many rows of each went."""
    now = time.time() if now is None else now
    deleted = {}
    with store.transaction() as con:
        deleted["serves"] = con.execute(
            "DELETE FROM battle_serves s WHERE coalesce(s.served_epoch, 0) < ?"
            " AND NOT EXISTS (SELECT 1 FROM votes v WHERE v.battle_id = s.battle_id AND v.voter = s.voter)",
            [now - rules.serve_ttl_seconds]).fetchone()[0]
        deleted["skips"] = con.execute(
            "DELETE FROM battle_skips WHERE coalesce(skipped_epoch, 0) < ?", [now - rules.skip_ttl_seconds]
        ).fetchone()[0]
        deleted["calls"] = con.execute(
            "DELETE FROM arena_calls WHERE ts_epoch < ?", [now - limits.DAY_S]).fetchone()[0]
    _last_compaction[id(store)] = now
    return deleted


def maybe_compact(store, rules: VotingRules, now: float) -> None:
    """Compact at most every tenth of the serves' time to live (and at least every minute)."""
    every = max(1.0, min(60.0, rules.serve_ttl_seconds / 10))
    if now - _last_compaction.get(id(store), float("-inf")) >= every:
        compact(store, rules, now)


def battle_for_prompt(store, prompt: str, voter: str, model_ids: list[str] | None = None,
                      sampling: dict | None = None, *, address: str | None = None,
                      rules: VotingRules | None = None, now: float | None = None) -> BattleView:
    """A battle on the voter's own prompt: two models (random registered ones unless
    given) answer now, the battle is stored (source "voter", awaiting the admin's review)
    and served blind to this voter. With `rules`, the upstream calls are first taken from
    the address's hourly and the arena's daily budget (RateLimited when either is spent)."""
    from concurrent.futures import ThreadPoolExecutor

    from ftassist.arena import models as arena_models

    _check_voter(voter)
    if not isinstance(prompt, str) or not prompt.strip():
        raise VoteError("Type a prompt first.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise VoteError(f"The prompt is too long ({len(prompt)} characters; at most {MAX_PROMPT_CHARS}).")
    prompt_limiter.check(voter)
    if model_ids is None:
        registered = [m["id"] for m in arena_models.list_models(store)]
        if len(registered) < 2:
            raise VoteError("The arena has fewer than two models: ask its owner to add some.")
        model_ids = random.sample(registered, 2)
    if len(set(model_ids)) != 2:
        raise VoteError("A battle needs two different models.")
    now = time.time() if now is None else now
    if rules is not None:
        _spend_calls(store, rules, voter, address, now)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda m: arena_models.generate(store, m, [prompt], sampling)[0], model_ids))
    if any(r.get("error") for r in results):
        # The error text may name the model: log it, tell the voter only that it failed.
        log.warning("arena: on-demand generation failed: %s", [r.get("error") for r in results])
        raise VoteError("One of the models could not answer right now: try again, or vote on a prepared battle.")
    battle_id = add_battle(store, prompt, model_ids[0], model_ids[1], results[0]["text"], results[1]["text"],
                           sampling=results[0].get("sampling"), source="voter")
    store.execute("UPDATE battles SET review = 'pending' WHERE id = ?", [battle_id])
    return _serve(store, battle_id, prompt, results[0]["text"], results[1]["text"], voter=voter, address=address,
                  now=now)


def _spend_calls(store, rules: VotingRules, voter: str, address: str | None, now: float) -> None:
    """Take an own prompt's upstream calls from the budgets, or refuse (RateLimited) without calling.
    Checked and recorded in one transaction, so concurrent requests cannot overspend."""
    calls = limits.CALLS_PER_PROMPT
    # a budget below one question's calls can never be met: that is "off", not "wait" (waiting never helps)
    if rules.prompt_calls_per_day < calls or 0 < rules.prompt_calls_per_address_per_hour < calls:
        raise RateLimited("Asking your own question is turned off in this arena: vote on the prepared battles.")
    with store.transaction() as con:
        (today,), = con.execute("SELECT coalesce(sum(calls), 0) FROM arena_calls WHERE ts_epoch >= ?",
                                [now - limits.DAY_S]).fetchall()
        if today + calls > rules.prompt_calls_per_day:
            raise RateLimited("The arena has used today's budget for answering voters' own questions: "
                              "vote on the prepared battles, or ask again tomorrow.")
        if address and rules.prompt_calls_per_address_per_hour > 0:
            rows = con.execute("SELECT ts_epoch, calls FROM arena_calls WHERE address_hash = ? AND ts_epoch >= ?"
                               " ORDER BY ts_epoch", [address, now - limits.HOUR_S]).fetchall()
            if sum(c for _, c in rows) + calls > rules.prompt_calls_per_address_per_hour:
                wait = max(1, math.ceil((rows[0][0] + limits.HOUR_S - now) / 60)) if rows else 60
                per_hour = rules.prompt_calls_per_address_per_hour // calls
                raise RateLimited(f"At most {per_hour} own questions an hour from one network: "
                                  f"try again in {wait} min, or vote on the prepared battles.")
        con.execute("INSERT INTO arena_calls (ts_epoch, address_hash, voter, calls) VALUES (?, ?, ?, ?)",
                    [now, address, voter, calls])


# -- voters' own prompts: the admin's review ------------------------------------------------------------
REVIEW_STATES = ("pending", "approved", "rejected")


def voter_prompts(store, review: str = "pending", limit: int = 200) -> list[dict]:
    """Voters' own prompts in one review state, oldest first: battle id, prompt, both answers, votes."""
    if review not in REVIEW_STATES:
        raise ValueError(f"Unknown review state {review!r}: use one of {', '.join(REVIEW_STATES)}.")
    return store.query(
        "SELECT b.id AS battle_id, b.prompt, b.answer_a, b.answer_b, CAST(b.created_at AS VARCHAR) AS asked_at,"
        " (SELECT count(*) FROM votes v WHERE v.battle_id = b.id) AS votes"
        " FROM battles b WHERE b.source = 'voter' AND coalesce(b.review, 'pending') = ?"
        " ORDER BY b.created_at, b.id LIMIT ?", [review, int(limit)])


def review_prompt(store, battle_id: str, approve: bool) -> dict:
    """Approve a voter's prompt (it may be served to others, and its votes count) or reject it (never
    served again, its votes stay flagged). Returns {"battle_id", "review", "prompt", "votes_counted"}."""
    rows = store.query_rows("SELECT prompt, source FROM battles WHERE id = ?", [battle_id or ""])
    if not rows or rows[0][1] != "voter":
        raise VoteError(f"No voter's prompt with battle id {battle_id!r}: the pending list shows them.")
    state = "approved" if approve else "rejected"
    with store.transaction() as con:
        con.execute("UPDATE battles SET review = ? WHERE id = ?", [state, battle_id])
        if approve:  # the votes held back only for the review count now (other flags stay)
            con.execute("UPDATE votes SET flagged_reason = NULL WHERE battle_id = ? AND flagged_reason IN (?, ?)",
                        [battle_id, AWAITING_REVIEW, REJECTED])
        else:
            con.execute("UPDATE votes SET flagged_reason = ? WHERE battle_id = ? AND (flagged_reason IS NULL"
                        " OR flagged_reason = ?)", [REJECTED, battle_id, AWAITING_REVIEW])
        (counted,), = con.execute("SELECT count(*) FROM votes WHERE battle_id = ? AND flagged_reason IS NULL",
                                  [battle_id]).fetchall()
    return {"battle_id": battle_id, "review": state, "prompt": rows[0][0], "votes_counted": counted}


def flagged_vote_count(store) -> int:
    """Votes kept but left out of the ratings because they broke a voting rule (not counting the votes on
    battles flagged for naming a model)."""
    return store.query_rows("SELECT count(*) FROM votes WHERE flagged_reason IS NOT NULL")[0][0]


# -- review ----------------------------------------------------------------------------------
def flag_suspicious_voters(store, alpha: float = 0.01, min_votes: int = 10) -> list[dict]:
    """Flag voters who agree with the other voters' majority far less often than voters do
    overall (one-sided binomial test at `alpha`, scipy). Flags are for review: their votes
    stay in the ratings. Returns the flagged voters with their figures.

    For each vote on a battle with at least two other voters whose votes have a single
    most common outcome (A wins / B wins / tie, both ties as one), "agree" means the same
    outcome as that majority. Expected agreement = the pooled rate over all such votes.
    """
    import numpy as np
    from scipy import stats

    df = store.query_df("SELECT battle_id, voter, winner FROM votes WHERE source = 'arena'")
    if df.empty:
        return []
    df["outcome"] = df["winner"].map({"model_a": 0, "model_b": 1}).fillna(2).astype(int)
    counts = df.pivot_table(index="battle_id", columns="outcome", aggfunc="size", fill_value=0)
    counts = counts.reindex(columns=[0, 1, 2], fill_value=0)
    per_vote = counts.loc[df["battle_id"]].to_numpy(copy=True)  # written below; pandas may hand out a read-only view
    per_vote[np.arange(len(df)), df["outcome"].to_numpy()] -= 1  # the others' votes only
    others = per_vote.sum(axis=1)
    top = per_vote.max(axis=1)
    unique_mode = (per_vote == top[:, None]).sum(axis=1) == 1
    usable = (others >= 2) & unique_mode
    agree = per_vote.argmax(axis=1) == df["outcome"].to_numpy()
    scored = df.assign(agree=agree)[usable]
    if scored.empty:
        return []
    expected = float(scored["agree"].mean())
    flagged = []
    for voter, group in scored.groupby("voter"):
        n, k = len(group), int(group["agree"].sum())
        if n < min_votes:
            continue
        p_value = float(stats.binomtest(k, n, expected, alternative="less").pvalue)
        if p_value < alpha:
            flagged.append({"voter": voter, "n_votes": n, "agreement": k / n, "expected": expected,
                            "p_value": p_value,
                            "reason": f"agrees with the majority on {k}/{n} battles (expected {expected:.0%})"})
    store.executemany(
        "INSERT OR REPLACE INTO voter_flags (voter, reason, n_votes, agreement, expected, p_value)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [[f["voter"], f["reason"], f["n_votes"], f["agreement"], f["expected"], f["p_value"]] for f in flagged],
    )
    return flagged


def arena_stats(store) -> dict[str, int]:
    """Counts for the admin view and the step bar: models in use (and removed), battles, flagged
    battles, votes, voters, flagged voters."""
    (battles, flagged), = store.query_rows(
        "SELECT count(*), count(flagged_reason) FROM battles")
    (votes, voters), = store.query_rows("SELECT count(*), count(DISTINCT voter) FROM votes")
    (flagged_voters,), = store.query_rows("SELECT count(*) FROM voter_flags")
    (models, removed), = store.query_rows(
        "SELECT count(*) FILTER (WHERE removed_at IS NULL), count(removed_at) FROM arena_models")
    return {"models": models, "removed_models": removed, "battles": battles, "flagged_battles": flagged,
            "votes": votes, "voters": voters, "flagged_voters": flagged_voters}
