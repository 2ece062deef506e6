"""Use cases of automatic evaluation: the arena's models measured on held-out chat examples, stored,
set beside the human votes and the LLM judge, and summed up in one sentence per fine-tuned model.

`ftassist.arena.metrics` holds the measures (ROUGE-L, BLEU, exact match, loss/perplexity, the per-class
table, the forgetting check, the overfitting signal, bootstrap intervals); this is the one way a person
reaches them (`ftassist eval`, the Evaluate tab, the assistant). The data defaults to the session's test
split (held out by Fix & split, never trained on), else its validation split, and says which it used.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftassist.arena import metrics
from ftassist.arena import models as arena_models

from .context import Context, NotFound, UseCaseError
from .data import readable
from .registry import use_case
from .session import Session

# The measures one model is compared with the base on, and which way is better.
HIGHER_IS_BETTER = {"rouge_l": True, "bleu": True, "exact_match": True, "perplexity": False}
MEASURE_NAMES = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact_match": "exact match", "perplexity": "perplexity",
                 "loss": "loss"}


@dataclass(frozen=True)
class ModelScores:
    """One model's figures on the held-out examples (None: does not apply, e.g. loss of an API model)."""

    model: str
    display_name: str
    kind: str
    rouge_l: float | None
    bleu: float | None
    exact_match: float | None
    loss: float | None
    perplexity: float | None
    n_generated: int
    n_generation_errors: int
    first_error: str | None = None
    note: str | None = None
    n_tokens: int | None = None  # assistant tokens scored for the loss
    # measure -> [low, high] 95% bootstrap interval over the examples (None: too few examples)
    intervals: dict[str, list[float] | None] = field(default_factory=dict)
    per_class: list[dict[str, Any]] = field(default_factory=list)  # read when the references are labels
    # vs the base (the first model): general answers right before/after, perplexity of their references, forgot
    forgetting: dict[str, Any] | None = None
    overfitting: dict[str, Any] | None = None  # the run's train vs validation loss (events file)
    human: dict[str, Any] | None = None  # people's votes against the base: win rate, Wilson interval, votes
    judge: dict[str, Any] | None = None  # the LLM judge's verdicts against the base, the same way
    base: str | None = None  # the model this one is compared with (None: it is the base)
    verdict: str | None = None  # one sentence for a non-expert
    predictions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation:
    data: str
    n_examples: int
    n_scored: int  # examples that end with an assistant turn (the reference)
    labels: bool  # the references read as labels: exact match is the task accuracy, per_class its table
    sampling: dict[str, Any]
    models: list[ModelScores]
    references: list[str]
    id: str | None = None  # the stored evaluation
    data_hash: str | None = None
    data_source: str | None = None  # which data was used and why (the test split, the validation split, a file)
    judge_agreement: dict[str, Any] | None = None  # the judge vs the human votes, when both exist


@dataclass(frozen=True)
class EvaluationRecord:
    """One stored evaluation of one model (the history)."""

    evaluation_id: str
    created_at: str
    model: str
    display_name: str
    base: str | None
    data_path: str
    data_hash: str
    data_source: str | None
    sampling: dict[str, Any]
    measures: dict[str, Any]
    verdict: str | None


# -- which data ------------------------------------------------------------------------------------------
def default_data(ctx: Context, session: Session | None = None) -> tuple[str, str]:
    """(path, what it is) of the held-out examples to evaluate on when the person gave no file: the session's
    test split, else its validation split (said so: the run chose its checkpoint by it), else the newest split
    under the data dir's clean folder."""
    split = session.split if session is not None else None
    if split is not None:
        if split.test and split.n_test and Path(split.test).is_file():
            return split.test, "the test split (held out by Fix & split, never seen in training)"
        if split.valid and split.n_valid and Path(split.valid).is_file():
            return split.valid, _VALID_NOTE
    folders = sorted((p for p in ctx.settings.clean_dir.iterdir() if p.is_dir()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in folders:
        if (folder / "test.jsonl").is_file() and (folder / "test.jsonl").stat().st_size:
            return str(folder / "test.jsonl"), f"the newest test split ({folder.name}, never seen in training)"
        if (folder / "valid.jsonl").is_file() and (folder / "valid.jsonl").stat().st_size:
            return str(folder / "valid.jsonl"), f"the newest {_VALID_NOTE} ({folder.name})"
    raise UseCaseError("No held-out data: give a chat JSONL file the models were not trained on (--data), or "
                       "clean and split a dataset in the Data step first.")


_VALID_NOTE = ("validation split: Fix & split wrote no test split, so this is the data the run measured its "
               "validation loss on (never trained on, but it chose the checkpoint by it: figures may flatter)")


def file_hash(path: str | Path) -> str:
    """sha256 of the file's bytes (stored with the figures: the same hash is the same data)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- people and the judge --------------------------------------------------------------------------------
def _versus(frame: Any, model_id: str, base_id: str) -> dict[str, Any] | None:
    """`model_id`'s win rate against `base_id` (ties as half) with its Wilson interval, or None without votes."""
    from ftassist.arena import ratings

    if frame is None or len(frame) == 0:
        return None
    head = ratings.headline(frame, model_id, base_id)
    if not head["votes"]:
        return None
    return {k: head[k] for k in ("wins", "losses", "ties", "votes", "win_rate", "win_rate_low", "win_rate_high")}


def _people_and_judge(ctx: Context, rows: list[dict]) -> dict[str, Any] | None:
    """Each non-base row gets `human` and `judge` (its record against the base); returns the judge's
    agreement with people, when both exist."""
    from ftassist.arena import judge as arena_judge
    from ftassist.arena import ratings

    votes = ratings.votes_frame(ctx.store)
    verdicts = arena_judge.verdicts_frame(ctx.store)
    base_id = rows[0]["model"]
    for row in rows[1:]:
        row["human"] = _versus(votes, row["model"], base_id)
        row["judge"] = _versus(verdicts, row["model"], base_id)
    agreement = arena_judge.human_judge_agreement(ctx.store)
    return agreement if agreement["n_pairs"] else None


# -- the verdict -----------------------------------------------------------------------------------------
def _percent(value: float) -> str:
    return f"{round(value * 100):d}%"


def _span(record: dict[str, Any]) -> str:
    return f"{round(record['win_rate_low'] * 100):d}-{_percent(record['win_rate_high'])}"


def verdict_sentence(row: dict[str, Any], base: dict[str, Any]) -> str:
    """One sentence a non-expert reads: on how many measures it beats the base, how often people (else the
    judge) prefer it, what happened to its general answers, and whether the run overfitted."""
    better, compared = [], []
    for measure, higher in HIGHER_IS_BETTER.items():
        mine, theirs = row.get(measure), base.get(measure)
        if mine is None or theirs is None:
            continue
        compared.append(measure)
        if (mine > theirs) if higher else (mine < theirs):
            better.append(measure)
    parts = []
    if compared:
        parts.append(f"better than the base on {len(better)} of {len(compared)} measure{'s' if len(compared) > 1 else ''}"
                     + (f" ({', '.join(MEASURE_NAMES[m] for m in better)})" if better and len(better) < len(compared)
                        else ""))
    else:
        parts.append("no automatic measure to compare with the base")
    human, judge = row.get("human"), row.get("judge")
    if human:
        parts.append(f"humans prefer it {_percent(human['win_rate'])} of the time "
                     f"({_span(human)}, "
                     f"{human['votes']} vote{'s' if human['votes'] != 1 else ''})")
    elif judge:
        parts.append(f"no human votes yet; the LLM judge prefers it {_percent(judge['win_rate'])} of the time "
                     f"({_span(judge)})")
    else:
        parts.append("no human votes yet")
    forgetting = row.get("forgetting")
    if forgetting:
        parts.append("general answers " + _general_words(forgetting))
    overfit = row.get("overfitting") or {}
    if overfit.get("overfitting"):
        parts.append("its validation loss rose late in training (a sign of overfitting: fewer epochs may do better)")
    return "; ".join(parts) + "."


def _general_words(forgetting: dict[str, Any]) -> str:
    change, ratio = forgetting.get("accuracy_change"), forgetting.get("ratio")
    if change is None and ratio is None:
        return "were not compared"
    if forgetting.get("forgot"):
        what = "got much worse"
    elif (change is not None and change < -0.025) or (ratio is not None and ratio > 1.05):
        what = "got slightly worse"
    elif change is not None and change > 0.025:
        what = "got slightly better"
    else:
        what = "held up"
    if change is not None and forgetting.get("base_accuracy") is not None:
        what += (f" ({_percent(forgetting['tuned_accuracy'])} right vs {_percent(forgetting['base_accuracy'])} "
                 f"for the base, on {forgetting['n_prompts']} general questions)")
    return what


# -- storing -------------------------------------------------------------------------------------------
_STORED = ("rouge_l", "bleu", "exact_match", "loss", "perplexity", "n_generated", "n_generation_errors", "n_tokens",
           "intervals", "per_class", "forgetting", "overfitting", "human", "judge", "note", "first_error")


def _store(ctx: Context, result: dict[str, Any], data_hash: str, source: str | None) -> str:
    evaluation_id = uuid.uuid4().hex[:12]
    base_id = result["models"][0]["model"]
    with ctx.store.transaction() as con:
        con.execute("INSERT INTO evaluations (id, data_path, data_hash, data_source, n_examples, n_scored, labels, "
                    "sampling_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [evaluation_id, result["data"], data_hash, source, result["n_examples"], result["n_scored"],
                     bool(result["labels"]), json.dumps(result["sampling"], sort_keys=True)])
        for position, row in enumerate(result["models"]):
            measures = {k: row.get(k) for k in _STORED}
            con.execute("INSERT INTO evaluation_scores (evaluation_id, model_id, display_name, base_model_id, "
                        "position, measures_json, verdict) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [evaluation_id, row["model"], row["display_name"], None if position == 0 else base_id,
                         position, json.dumps(measures, default=_json_default), row.get("verdict")])
    return evaluation_id


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# -- the use cases ---------------------------------------------------------------------------------------
@use_case(assistant=True, confirm=True)
def evaluate_models(ctx: Context, models: list[str], data: str | None = None, max_examples: int | None = 50,
                    temperature: float = 0.0, max_new_tokens: int = 256, session: Session | None = None,
                    rounds: int = 1000) -> Evaluation:
    """Measure arena models on held-out chat examples and say, per fine-tuned model, whether it beats the base.

    Per model: ROUGE-L, BLEU, exact match (the task accuracy, with a per-class table, when the answers are
    labels), loss and perplexity (local models), each with a 95% bootstrap interval; for each model after the
    first: the forgetting check on general questions, its record in human votes and the LLM judge's verdicts
    against the first, and one verdict sentence; the run's overfitting signal. The figures are stored with the
    data's hash and the generation settings.

    Args:
        models: Model ids or display names, the base model first (the others are compared with it).
        data: A chat JSONL file of examples the models were not trained on (default: the session's test
            split, else its validation split).
        max_examples: Use at most this many examples (None: all).
        temperature: Sampling temperature; 0 (greedy) makes the figures repeatable.
        max_new_tokens: The longest answer, in tokens.
        session: The person's session (its split is the default data).
        rounds: Bootstrap resamples for the intervals.
    """
    ids = []
    for name in models:
        found = arena_models.find_model(ctx.store, (name or "").strip())
        if found is None:
            raise NotFound(f"No model {name!r} in the arena: `ftassist arena models` lists them.")
        ids.append(found["id"])
    if len(set(ids)) != len(ids):
        raise UseCaseError("A model is named twice: list each model once, the base first.")
    source = None
    if data:
        readable(ctx, data)  # the app reads only uploads and its data dir
    else:
        data, source = default_data(ctx, session)
    try:
        digest = file_hash(data)
        result = metrics.evaluate(ctx.store, ids, data, max_examples, rounds=rounds,
                                  sampling={"temperature": temperature, "max_new_tokens": max_new_tokens, "seed": 0})
    except (FileNotFoundError, IsADirectoryError):
        raise UseCaseError(f"No file at {data}: give the held-out chat JSONL (e.g. the test split).") from None
    except ValueError as exc:  # a bad line (with its number), bad sampling, nothing to score
        raise UseCaseError(str(exc)) from None
    rows = result["models"]
    agreement = _people_and_judge(ctx, rows) if len(rows) >= 2 else None
    for row in rows[1:]:
        row["base"] = rows[0]["model"]
        row["verdict"] = f"{row['display_name']}: {verdict_sentence(row, rows[0])}"
    evaluation_id = _store(ctx, result, digest, source)
    names = set(ModelScores.__dataclass_fields__)
    scores = [ModelScores(**{k: v for k, v in row.items() if k in names}) for row in rows]
    return Evaluation(data=result["data"], n_examples=result["n_examples"], n_scored=result["n_scored"],
                      labels=result["labels"], sampling=result["sampling"], models=scores,
                      references=result["references"], id=evaluation_id, data_hash=digest, data_source=source,
                      judge_agreement=agreement)


@use_case(assistant=True)
def evaluation_history(ctx: Context, model: str | None = None, limit: int = 20) -> list[EvaluationRecord]:
    """The stored automatic evaluations, newest first: per model its figures, the data's hash and the settings.

    Args:
        model: Only this model (id or display name).
        limit: At most this many rows.
    """
    if limit < 1:
        raise UseCaseError(f"The number of rows must be at least 1 (got {limit}).")
    where, params = "", []
    if model:
        found = arena_models.find_model(ctx.store, model.strip())
        where, params = "WHERE s.model_id = ?", [found["id"] if found else model.strip()]
    rows = ctx.store.query(
        "SELECT s.evaluation_id, e.created_at, s.model_id, s.display_name, s.base_model_id, e.data_path, "
        "e.data_hash, e.data_source, e.sampling_json, s.measures_json, s.verdict FROM evaluation_scores s "
        f"JOIN evaluations e ON e.id = s.evaluation_id {where} ORDER BY e.created_at DESC, s.position LIMIT ?",
        [*params, int(limit)])
    return [EvaluationRecord(evaluation_id=r["evaluation_id"], created_at=str(r["created_at"]), model=r["model_id"],
                             display_name=r["display_name"], base=r["base_model_id"], data_path=r["data_path"],
                             data_hash=r["data_hash"], data_source=r["data_source"],
                             sampling=json.loads(r["sampling_json"]), measures=json.loads(r["measures_json"]),
                             verdict=r["verdict"]) for r in rows]


# -- what the Leaderboard shows beside the votes ------------------------------------------------------
NOT_EVALUATED = ("not evaluated: run the Evaluate step (the Evaluate tab, or `ftassist eval --models BASE,MODEL`) "
                 "to measure it on held-out data")
SHORT_HASH = 8  # characters of the data's sha256 shown beside its file name


def latest_by_model(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model id, its newest stored evaluation, as the Leaderboard shows it: the measures and their
    intervals as stored (nothing recomputed), which data (file name, sha256 and its short form) and settings.

    `rows`: one per stored (evaluation, model), with the columns `stored_rows` reads. The newest is the one
    with the latest `created_at` (an evaluation stores all its models at once, so they share it)."""
    newest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: str(r["created_at"]), reverse=True):
        if row["model_id"] in newest:
            continue
        measures = json.loads(row["measures_json"]) if isinstance(row["measures_json"], str) else row["measures_json"]
        sampling = json.loads(row["sampling_json"]) if isinstance(row["sampling_json"], str) else row["sampling_json"]
        newest[row["model_id"]] = {
            "evaluation_id": row["evaluation_id"], "evaluated_at": str(row["created_at"]),
            "data": Path(row["data_path"]).name, "data_path": row["data_path"], "data_hash": row["data_hash"],
            "data_hash_short": row["data_hash"][:SHORT_HASH], "data_source": row["data_source"],
            "n_scored": row["n_scored"], "labels": bool(row["labels"]), "sampling": sampling,
            "base": row["base_model_id"],
            **{key: measures.get(key) for key in ("rouge_l", "bleu", "exact_match", "loss", "perplexity")},
            "intervals": measures.get("intervals") or {},
            "forgetting": measures.get("forgetting"),
            "verdict": row["verdict"],
        }
    return newest


def stored_rows(ctx: Context) -> list[dict[str, Any]]:
    """Every stored (evaluation, model) row with its evaluation's data and settings (read for the Leaderboard)."""
    return ctx.store.query(
        "SELECT s.evaluation_id, e.created_at, s.model_id, s.base_model_id, e.data_path, e.data_hash, "
        "e.data_source, e.n_scored, e.labels, e.sampling_json, s.measures_json, s.verdict "
        "FROM evaluation_scores s JOIN evaluations e ON e.id = s.evaluation_id")


def latest_evaluations(ctx: Context) -> dict[str, dict[str, Any]]:
    """Per model id, its newest stored evaluation (see `latest_by_model`)."""
    return latest_by_model(stored_rows(ctx))
