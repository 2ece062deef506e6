"""What the Leaderboard shows beside each model's human rating: its newest stored automatic measures (the
Evaluate step's rows, `evaluation.latest_evaluations`) and the LLM judge's rating with how often the judge's
verdict matches the human majority. Everything is read from the store, nothing is measured again: a model
never evaluated says so, with the step that measures it.

The functions that decide (`majority_agreement`, `with_measures`) are pure, over rows as the store gives them,
so each rule can be checked by hand; `beside_votes` reads the rows and joins them to the leaderboard by model id.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ftassist.arena.metrics import MIN_EXAMPLES_FOR_INTERVAL

from . import evaluation
from .context import Context

TIES = ("tie", "tie (bothbad)")


def _winner(winner: str, model_a: str, model_b: str) -> str | None:
    """A verdict or a vote as the winning model's id, or 'tie'; None when it names no outcome."""
    if winner == "model_a":
        return model_a
    if winner == "model_b":
        return model_b
    return "tie" if winner in TIES else None


def _record(agree: int, battles: int) -> dict[str, Any]:
    """How often the judge matched the majority, with a Wilson interval once there are enough battles for one."""
    from ftassist.arena import ratings  # scipy: the leaderboard has it loaded already

    interval = None
    if battles >= MIN_EXAMPLES_FOR_INTERVAL:
        interval = [round(x, 4) for x in ratings.wilson_interval(agree, battles)]
    return {"agree": agree, "battles": battles, "rate": round(agree / battles, 4), "interval": interval}


def majority_agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often the judge's verdict matches the human majority, over battles that have both.

    `rows`: one per (human vote, judge verdict) on a battle: battle_id, model_a, model_b (the battle's sides),
    judge_winner (model_a / model_b / tie of the battle), vote_a, vote_b, vote_winner (the vote's own sides,
    which may be the battle's swapped). The majority is the outcome (a model, or a tie) most of the battle's
    voters chose; a battle where two outcomes share the most votes has no majority and is left out (`split`).
    Returns the overall record and one per model (the battles it was in), each {agree, battles, rate,
    interval} (interval: 95% Wilson, None under MIN_EXAMPLES_FOR_INTERVAL battles), or None without battles.
    """
    battles: dict[str, dict[str, Any]] = {}
    for row in rows:
        judged = _winner(row["judge_winner"], row["model_a"], row["model_b"])
        voted = _winner(row["vote_winner"], row["vote_a"], row["vote_b"])
        if judged is None or voted is None:
            continue
        battle = battles.setdefault(row["battle_id"], {"sides": (row["model_a"], row["model_b"]), "judged": judged,
                                                      "votes": Counter()})
        battle["votes"][voted] += 1
    counts: dict[str | None, list[int]] = {}  # None: overall; else a model id -> [agree, battles]
    split = 0
    for battle in battles.values():
        top = battle["votes"].most_common(2)
        if len(top) == 2 and top[0][1] == top[1][1]:
            split += 1
            continue
        agreed = int(top[0][0] == battle["judged"])
        for key in (None, *battle["sides"]):
            tally = counts.setdefault(key, [0, 0])
            tally[0] += agreed
            tally[1] += 1
    overall = counts.pop(None, None)
    return {"overall": _record(*overall) if overall else None, "split": split,
            "by_model": {model: _record(*tally) for model, tally in counts.items()}}


def with_measures(rows: list[dict[str, Any]], evaluations: dict[str, dict[str, Any]],
                  judge: dict[str, Any] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The leaderboard's rows, each with `evaluation` (its newest stored measures, or None and
    `evaluation_note` saying to run the Evaluate step) and `judge` (the judge's rating and agreement for it,
    or None); and the names of the models never evaluated."""
    out, not_evaluated = [], []
    by_model = (judge or {}).get("by_model", {})
    for row in rows:
        measured = evaluations.get(row["model_id"])
        if measured is None:
            not_evaluated.append(row["model"])
        out.append(dict(row, evaluation=measured, evaluation_note=None if measured else evaluation.NOT_EVALUATED,
                        judge=by_model.get(row["model_id"])))
    return out, not_evaluated


# -- reading the store ------------------------------------------------------------------------------------
def newest_judge(ctx: Context) -> str | None:
    """The judge whose verdicts are newest (several judges are not pooled: each is its own second opinion)."""
    found = ctx.store.query_rows("SELECT judge_model FROM judge_verdicts GROUP BY judge_model "
                                 "ORDER BY max(ts) DESC, judge_model LIMIT 1")
    return found[0][0] if found else None


def judge_standing(ctx: Context, rounds: int) -> dict[str, Any] | None:
    """The newest judge's rating of each model (from its verdicts alone) and its agreement with the human
    majority, overall and per model; None when no judge has a verdict."""
    from ftassist.arena import judge as arena_judge
    from ftassist.arena import ratings

    name = newest_judge(ctx)
    if name is None:
        return None
    shown = ratings.display_names(ctx.store).get(name, name)
    agreement = majority_agreement(ctx.store.query(
        "SELECT b.id AS battle_id, b.model_a, b.model_b, j.winner AS judge_winner, v.model_a AS vote_a, "
        "v.model_b AS vote_b, v.winner AS vote_winner FROM judge_verdicts j JOIN battles b ON b.id = j.battle_id "
        "JOIN votes v ON v.battle_id = b.id WHERE j.judge_model = ? AND b.flagged_reason IS NULL "
        "AND v.flagged_reason IS NULL", [name]))
    by_model: dict[str, dict[str, Any]] = {}
    for row in arena_judge.judge_leaderboard(ctx.store, name, rounds=rounds):
        by_model[row["model_id"]] = {"judge": shown, "rating": row["rating"], "ci_low": row["ci_low"],
                                     "ci_high": row["ci_high"], "verdicts": row["votes"],
                                     "agreement": agreement["by_model"].get(row["model_id"])}
    return {"judge": shown, "agreement": agreement["overall"], "split": agreement["split"], "by_model": by_model}


def beside_votes(ctx: Context, rows: list[dict[str, Any]],
                 rounds: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[str]]:
    """(the rows with their measures and the judge's figures, the judge's overall agreement, the models never
    evaluated): what the leaderboard use cases add to the human ratings."""
    if not rows:
        return rows, None, []
    judge = judge_standing(ctx, rounds)
    joined, not_evaluated = with_measures(rows, evaluation.latest_evaluations(ctx), judge)
    overall = None if judge is None else {k: judge[k] for k in ("judge", "agreement", "split")}
    return joined, overall, not_evaluated
