"""Votes in and out: CSV/Parquet export, a DPO preference dataset, and CSV import.

The DPO file is what TRL's `DPOTrainer` reads: one JSON object per line with `prompt`,
`chosen`, `rejected`, in TRL's conversational form by default (`prompt` a list of
messages ending with the user turn, `chosen`/`rejected` one assistant message each), or
plain strings with `conversational=False`. `vote_pairs` holds the rules, and says why each
vote that made no pair was dropped: a tie or "both bad" gives no pair (no answer is preferred, or
neither is worth learning); a vote with no battle (imported: no answers), on a flagged battle
(an answer gives a model away, or is empty), flagged itself (too fast, a burst) or from a voter
flagged for review is left out; when a battle got several decisive votes its majority decides
(the minority is "outvoted") and an even split makes no pair (the data would contradict itself);
two identical answers make no pair (nothing to prefer).

Import reads FastChat's cleaned-battle columns (`model_a`, `model_b`, `winner` in
`model_a | model_b | tie | tie (bothbad)`, optional `voter`, `timestamp`) and reports
every bad row by its line in the file (the header is line 1). By default a file with any
bad row imports nothing, so a fixed file can be imported again without duplicates.
"""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas and the ratings (scipy) load only when used: every command imports this module
    import pandas as pd

VOTE_COLUMNS = ["battle_id", "voter", "model_a", "model_b", "winner", "choice", "timestamp", "source",
                "battle_flagged", "model_a_id", "model_b_id", "model_a_removed", "model_b_removed"]


def votes_table(store) -> pd.DataFrame:
    """Every stored vote, with display names (`model_a`, `model_b`) and ids, oldest first.
    A vote on a model since removed from the arena is kept, marked in `model_a_removed` / `model_b_removed`."""
    df = store.query_df(
        "SELECT v.battle_id, v.voter, coalesce(ma.display_name, v.model_a) AS model_a,"
        " coalesce(mb.display_name, v.model_b) AS model_b, v.winner, v.choice, v.ts AS timestamp, v.source,"
        " (b.flagged_reason IS NOT NULL) AS battle_flagged, v.model_a AS model_a_id, v.model_b AS model_b_id,"
        " (ma.removed_at IS NOT NULL) AS model_a_removed, (mb.removed_at IS NOT NULL) AS model_b_removed"
        " FROM votes v LEFT JOIN battles b ON b.id = v.battle_id"
        " LEFT JOIN arena_models ma ON ma.id = v.model_a LEFT JOIN arena_models mb ON mb.id = v.model_b"
        " ORDER BY v.ts, v.id"
    )
    return df[VOTE_COLUMNS]


def export_votes(store, out: str | Path, fmt: str | None = None) -> int:
    """Write the votes to `out` as CSV or Parquet (from `fmt`, else the file's suffix);
    returns the number of votes written."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".") or "csv").lower()
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"Unknown format {fmt!r}: use csv or parquet.")
    df = votes_table(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)
    return len(df)


DROP_REASONS = {
    "imported": "imported votes (no battle, so no answers to learn from)",
    "flagged_battle": "votes on flagged battles (an answer names a model or is empty)",
    "flagged_vote": "flagged votes (too fast, over the rate limit, or a one-sided burst)",
    "flagged_voter": "votes of voters flagged for review",
    "tie": "ties (neither answer preferred: no pair)",
    "both_bad": "both bad (neither answer worth learning: no pair)",
    "split": "votes on battles evenly split between the two answers",
    "outvoted": "outvoted (the battle's majority made its pair)",
    "same_answer": "votes on battles whose two answers are the same",
}
PAIR_RULES = ("One pair per battle: the majority of its decisive votes picks the chosen answer. Ties and "
              "'both bad' give no pair; imported votes, flagged battles, flagged votes and flagged voters are "
              "left out; an evenly split battle or two identical answers give no pair.")


@dataclass
class VotePairs:
    """The preference pairs made from votes, and what became of every vote."""

    pairs: list[dict[str, Any]]
    votes: int  # votes considered
    usable: int  # votes behind a pair (they agree with its chosen answer)
    dropped: dict[str, int]  # reason key (DROP_REASONS) -> votes, only reasons that occurred
    prompts: list[str] = field(default_factory=list)  # the battles' prompts that made pairs, in order

    def dropped_text(self) -> list[str]:
        """The drop counts in words, most common first."""
        return [f"{n} {DROP_REASONS[key]}" for key, n in sorted(self.dropped.items(), key=lambda kv: -kv[1])]


def _drop_reason(row: dict, exclude_flagged_voters: bool) -> str | None:
    if not row["has_battle"]:
        return "imported"
    if row["battle_flag"] is not None:
        return "flagged_battle"
    if row["vote_flag"] is not None:
        return "flagged_vote"
    if exclude_flagged_voters and row["voter_flagged"]:
        return "flagged_voter"
    if row["winner"] == "tie":
        return "tie"
    if row["winner"] == "tie (bothbad)":
        return "both_bad"
    return None


def vote_pairs(store, model_id: str | None = None, conversational: bool = True,
               exclude_flagged_voters: bool = True, system_prompt: str | None = None) -> VotePairs:
    """Preference pairs from the stored votes (only those on battles with `model_id`, when given), by
    the rules in this module's docstring. `system_prompt` starts each conversational prompt (the one the
    answers were generated under)."""
    rows = store.query(
        "SELECT v.battle_id, v.winner, v.flagged_reason AS vote_flag, b.id IS NOT NULL AS has_battle,"
        " b.flagged_reason AS battle_flag, b.prompt, b.answer_a, b.answer_b,"
        " EXISTS (SELECT 1 FROM voter_flags f WHERE f.voter = v.voter) AS voter_flagged"
        " FROM votes v LEFT JOIN battles b ON b.id = v.battle_id"
        " WHERE ? IS NULL OR ? IN (v.model_a, v.model_b)"
        " ORDER BY b.created_at, v.battle_id, v.ts, v.id",
        [model_id, model_id],
    )
    dropped: dict[str, int] = {}
    decisive: dict[str, list[dict]] = {}
    for row in rows:
        reason = _drop_reason(row, exclude_flagged_voters)
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
        else:
            decisive.setdefault(row["battle_id"], []).append(row)
    pairs, prompts, usable = [], [], 0
    for votes in decisive.values():
        battle = votes[0]
        a_votes = sum(1 for v in votes if v["winner"] == "model_a")
        b_votes = len(votes) - a_votes
        if a_votes == b_votes:
            dropped["split"] = dropped.get("split", 0) + len(votes)
            continue
        if battle["answer_a"].strip() == battle["answer_b"].strip():
            dropped["same_answer"] = dropped.get("same_answer", 0) + len(votes)
            continue
        usable += max(a_votes, b_votes)
        if min(a_votes, b_votes):
            dropped["outvoted"] = dropped.get("outvoted", 0) + min(a_votes, b_votes)
        a_won = a_votes > b_votes
        chosen, rejected = ((battle["answer_a"], battle["answer_b"]) if a_won
                            else (battle["answer_b"], battle["answer_a"]))
        prompts.append(battle["prompt"])
        if conversational:
            prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
            pairs.append({
                "prompt": prompt + [{"role": "user", "content": battle["prompt"]}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            })
        else:
            pairs.append({"prompt": battle["prompt"], "chosen": chosen, "rejected": rejected})
    return VotePairs(pairs=pairs, votes=len(rows), usable=usable, dropped=dropped, prompts=prompts)


def dpo_pairs(store, conversational: bool = True) -> list[dict[str, Any]]:
    """Preference pairs from the decisive votes, one per battle (the rules of `vote_pairs`)."""
    return vote_pairs(store, conversational=conversational).pairs


def write_pairs(pairs: list[dict[str, Any]], out: str | Path) -> Path:
    """The pairs as JSON Lines (TRL's preference rows), parent folders made."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
    return out


def export_dpo(store, out: str | Path, conversational: bool = True) -> int:
    """Write the DPO pairs as JSON Lines (or Parquet for a `.parquet` path); returns the count."""
    out = Path(out)
    pairs = dpo_pairs(store, conversational=conversational)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        import pandas as pd

        pd.DataFrame(pairs, columns=["prompt", "chosen", "rejected"]).to_parquet(out, index=False)
    else:
        write_pairs(pairs, out)
    return len(pairs)


# -- import ----------------------------------------------------------------------------------
@dataclass
class ImportResult:
    imported: int = 0
    rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)

    def error_lines(self) -> list[str]:
        return [f"line {line}: {message}" for line, message in self.errors]


def _parse_time(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value))
    except ValueError:
        pass
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def import_votes(store, path: str | Path, skip_bad: bool = False) -> ImportResult:
    """Import votes from a CSV file. With bad rows: nothing is imported unless `skip_bad`
    (then the good rows are). Model names that match a registered model (id or display
    name) are stored as its id, so imported and arena votes rate the same model together."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No file at {path}.")
    names = {}
    for model_id, display in store.query_rows(
            "SELECT id, display_name FROM arena_models ORDER BY removed_at IS NULL, created_at"):  # in use wins
        names[model_id.lower()] = model_id
        names[display.lower()] = model_id
    result = ImportResult()
    good: list[list] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("model_a", "model_b", "winner") if c not in header]
        if missing:
            result.errors.append((1, f"the header lacks column(s) {', '.join(missing)} "
                                     "(need model_a, model_b, winner; optional voter, timestamp)"))
            return result
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num  # the file line where this row ends (a quoted field may span lines)
            result.rows += 1
            row = {k: (v or "").strip() if isinstance(v, str) else "" for k, v in row.items() if k}
            problem = _row_problem(row)
            timestamp = None
            if not problem:
                try:
                    timestamp = _parse_time(row.get("timestamp", ""))
                except ValueError:
                    problem = f"timestamp {row['timestamp']!r} is not ISO 8601 (2024-05-01T12:00:00) or epoch seconds"
            if problem:
                result.errors.append((line, problem))
                continue
            model_a = names.get(row["model_a"].lower(), row["model_a"])
            model_b = names.get(row["model_b"].lower(), row["model_b"])
            good.append([uuid.uuid4().hex, f"import-{uuid.uuid4().hex}", row.get("voter") or "import",
                         model_a, model_b, row["winner"], timestamp or datetime.now()])
    if result.errors and not skip_bad:
        return result
    with store.transaction() as con:
        if good:
            con.executemany(
                "INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, ts, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'import')",
                good,
            )
    result.imported = len(good)
    return result


def _row_problem(row: dict) -> str | None:
    from .ratings import WINNERS

    for column in ("model_a", "model_b", "winner"):
        if not row.get(column):
            return f"{column} is empty"
    if row["winner"] not in WINNERS:
        return f"winner {row['winner']!r} is not one of {' | '.join(WINNERS)}"
    if row["model_a"] == row["model_b"]:
        return f"model_a and model_b are the same model ({row['model_a']!r})"
    return None
