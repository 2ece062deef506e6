"""Votes in and out: CSV/Parquet export, a DPO preference dataset, and CSV import.

The DPO file is what TRL's `DPOTrainer` reads: one JSON object per line with `prompt`,
`chosen`, `rejected`, in TRL's conversational form by default (`prompt` a list of
messages ending with the user turn, `chosen`/`rejected` one assistant message each), or
plain strings with `conversational=False`. Only decisive votes on unflagged battles make
pairs; when a battle got several decisive votes, its majority decides and an even split
makes no pair (the data would contradict itself).

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
from typing import Any

import pandas as pd

from .ratings import WINNERS

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


def dpo_pairs(store, conversational: bool = True) -> list[dict[str, Any]]:
    """Preference pairs from decisive votes on unflagged battles, one per battle."""
    rows = store.query(
        "SELECT b.id, b.prompt, b.answer_a, b.answer_b,"
        " count(*) FILTER (WHERE v.winner = 'model_a') AS a_votes,"
        " count(*) FILTER (WHERE v.winner = 'model_b') AS b_votes"
        " FROM battles b JOIN votes v ON v.battle_id = b.id"
        " WHERE b.flagged_reason IS NULL AND v.flagged_reason IS NULL AND v.winner IN ('model_a', 'model_b')"
        " GROUP BY b.id, b.prompt, b.answer_a, b.answer_b, b.created_at ORDER BY b.created_at, b.id"
    )
    pairs = []
    for row in rows:
        if row["a_votes"] == row["b_votes"]:
            continue
        a_won = row["a_votes"] > row["b_votes"]
        chosen, rejected = (row["answer_a"], row["answer_b"]) if a_won else (row["answer_b"], row["answer_a"])
        if conversational:
            pairs.append({
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            })
        else:
            pairs.append({"prompt": row["prompt"], "chosen": chosen, "rejected": rejected})
    return pairs


def export_dpo(store, out: str | Path, conversational: bool = True) -> int:
    """Write the DPO pairs as JSON Lines (or Parquet for a `.parquet` path); returns the count."""
    out = Path(out)
    pairs = dpo_pairs(store, conversational=conversational)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        pd.DataFrame(pairs, columns=["prompt", "chosen", "rejected"]).to_parquet(out, index=False)
    else:
        with out.open("w", encoding="utf-8") as fh:
            for pair in pairs:
                fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
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
    for column in ("model_a", "model_b", "winner"):
        if not row.get(column):
            return f"{column} is empty"
    if row["winner"] not in WINNERS:
        return f"winner {row['winner']!r} is not one of {' | '.join(WINNERS)}"
    if row["model_a"] == row["model_b"]:
        return f"model_a and model_b are the same model ({row['model_a']!r})"
    return None
