"""An optional LLM judge for battles, kept apart from the human votes.

MT-Bench's pairwise method: the judge model reads the question and the two answers and
ends with `[[A]]`, `[[B]]` or `[[C]]` (tie). LLM judges prefer whichever answer they read
first, so every battle is judged twice at temperature 0, once in each order; a verdict
that flips with the order is a tie. Verdicts go to the `judge_verdicts` table (never to
`votes`), with `winner` in the vote vocabulary (`model_a`, `model_b`, `tie`, or `error`
when the judge gave no readable verdict), relative to the battle's own `model_a`/`model_b`,
and the judge's explanation for each order. `judge_leaderboard` rates the models from the
verdicts alone, the same way the human leaderboard rates them from votes.

The judge is any OpenAI-compatible endpoint: a registered API model's id, or a config
dict `{"kind": "openai_compatible", "base_url": ..., "model": ..., "api_key_env": ...}`;
`resolve_judge` turns either into the one config dict the other functions take.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from . import models

JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question displayed below. You should choose the assistant that follows the user's instructions "
    "and answers the user's question better. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by "
    "comparing the two responses and provide a short explanation. Avoid any position biases and ensure that the "
    "order in which the responses were presented does not influence your decision. Do not allow the length of "
    "the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective "
    "as possible. After providing your explanation, output your final verdict by strictly following this "
    'format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)

JUDGE_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "{reference_block}"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)
REFERENCE_BLOCK = "[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n"

JUDGE_SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 1024, "seed": 0}

_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def render_question(prompt: str | list[dict]) -> str:
    """A battle's prompt as the judge reads it: plain text, or the turns of a conversation."""
    if isinstance(prompt, str):
        try:
            parsed = json.loads(prompt)
        except ValueError:
            return prompt
        if not isinstance(parsed, list):
            return prompt
        prompt = parsed
    turns = [m for m in prompt if isinstance(m, dict)]
    if len(turns) == 1:
        return str(turns[0].get("content", ""))
    return "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in turns)


def judge_messages(question: str, first: str, second: str, reference: str | None = None) -> list[dict]:
    """The pairwise prompt with `first` shown as assistant A and `second` as assistant B."""
    block = REFERENCE_BLOCK.format(reference=reference) if reference else ""
    user = JUDGE_TEMPLATE.format(question=question, reference_block=block, answer_a=first, answer_b=second)
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str | None) -> str | None:
    """'A', 'B', 'C' (tie) from the judge's last `[[X]]`, or None when it gave none."""
    found = _VERDICT.findall(text or "")
    return found[-1] if found else None


def combine(verdict_ab: str | None, verdict_ba: str | None) -> str:
    """The battle's winner from both orders: 'model_a', 'model_b', 'tie', or 'error'.

    In the second order the battle's answer A is shown as B, so its verdict is mapped back
    before comparing. Agreement keeps the winner; a flip (or one tie) is a tie.
    """
    if verdict_ab is None or verdict_ba is None:
        return "error"
    first = {"A": "model_a", "B": "model_b", "C": "tie"}[verdict_ab]
    second = {"A": "model_b", "B": "model_a", "C": "tie"}[verdict_ba]
    return first if first == second else "tie"


def resolve_judge(store, judge: str | dict) -> dict:
    """The judge as a config dict with its `kind` and the `name` its verdicts are stored under:
    a registered API model (by id or name; its id is the name) or an endpoint config (its model)."""
    if isinstance(judge, str):
        row = models.get_model(store, judge)
        spec = dict(row["config"], kind=row["kind"], name=row["id"])
    else:
        spec = dict(judge)
        spec.setdefault("kind", "openai_compatible")
        spec.setdefault("name", str(spec.get("model")))
    if spec["kind"] not in models.API_KINDS:
        raise models.ModelError("The judge must be an API model (openai or openai_compatible).")
    return spec


def _judge_call(judge: dict, conversations: list[list[dict]]) -> list[dict]:
    config = {k: v for k, v in judge.items() if k not in ("kind", "name")}
    kind = judge.get("kind", "openai_compatible")
    if kind not in models.API_KINDS:
        raise models.ModelError("The judge must be an API model (openai or openai_compatible).")
    return models.generate_with_config(kind, config, conversations, JUDGE_SAMPLING)


def judge_name(judge: dict) -> str:
    return str(judge.get("name") or judge.get("model"))


def judge_pairs(judge: dict, items: list[dict]) -> list[dict]:
    """Judge many (question, answer_a, answer_b[, reference]) items, both orders each, concurrently.

    Returns per item: winner, verdict_ab, verdict_ba, raw_ab, raw_ba, error.
    """
    conversations: list[list[dict]] = []
    for it in items:
        q = render_question(it["question"])
        conversations.append(judge_messages(q, it["answer_a"], it["answer_b"], it.get("reference")))
        conversations.append(judge_messages(q, it["answer_b"], it["answer_a"], it.get("reference")))
    answers = _judge_call(judge, conversations)
    out = []
    for i in range(len(items)):
        ab, ba = answers[2 * i], answers[2 * i + 1]
        v_ab, v_ba = parse_verdict(ab["text"]), parse_verdict(ba["text"])
        error = ab.get("error") or ba.get("error")
        if not error and (v_ab is None or v_ba is None):
            error = "the judge gave no [[A]]/[[B]]/[[C]] verdict"
        out.append({
            "winner": combine(v_ab, v_ba), "verdict_ab": v_ab, "verdict_ba": v_ba,
            "raw_ab": ab["text"], "raw_ba": ba["text"], "error": error,
        })
    return out


def judge_pair(judge: dict, question: str | list[dict], answer_a: str, answer_b: str,
               reference: str | None = None) -> dict:
    """One pair judged in both orders (see `judge_pairs`)."""
    return judge_pairs(judge, [{"question": question, "answer_a": answer_a, "answer_b": answer_b,
                                "reference": reference}])[0]


def judge_battles(store, judge: str | dict, battle_ids: list[str] | None = None, *, redo: bool = False,
                  use_reference: bool = False) -> list[dict]:
    """Judge stored battles and record the verdicts in `judge_verdicts`.

    Battles this judge already has a verdict on are skipped unless `redo`. A judge call that
    failed is not stored (so a later run retries it) and is returned with its error.
    """
    judge = resolve_judge(store, judge)
    name = judge_name(judge)
    sql = "SELECT id, prompt, answer_a, answer_b, reference FROM battles"
    params: list[Any] = []
    if battle_ids is not None:
        if not battle_ids:
            return []
        sql += " WHERE id IN (" + ", ".join("?" for _ in battle_ids) + ")"
        params = list(battle_ids)
    battles = store.query(sql + " ORDER BY created_at, id", params)
    if not redo:
        done = {r[0] for r in store.query_rows("SELECT battle_id FROM judge_verdicts WHERE judge_model = ?", [name])}
        battles = [b for b in battles if b["id"] not in done]
    if not battles:
        return []
    results = judge_pairs(judge, [
        {"question": b["prompt"], "answer_a": b["answer_a"], "answer_b": b["answer_b"],
         "reference": b["reference"] if use_reference else None}
        for b in battles
    ])
    out = []
    for battle, res in zip(battles, results):
        res = dict(res, battle_id=battle["id"], judge_model=name)
        if not res["error"]:
            with store.transaction() as con:
                if redo:
                    con.execute("DELETE FROM judge_verdicts WHERE battle_id = ? AND judge_model = ?", [battle["id"], name])
                con.execute(
                    "INSERT INTO judge_verdicts (id, battle_id, judge_model, winner, verdict_ab, verdict_ba, "
                    "explanation_ab, explanation_ba) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [uuid.uuid4().hex, battle["id"], name, res["winner"], res["verdict_ab"], res["verdict_ba"],
                     res["raw_ab"], res["raw_ba"]],
                )
        out.append(res)
    return out


def judge_win_rate(verdicts: list[str]) -> float | None:
    """MT-Bench's adjusted win rate of model_a: (wins + 0.5 ties) / decided verdicts (errors left out)."""
    counted = [v for v in verdicts if v in ("model_a", "model_b", "tie")]
    if not counted:
        return None
    return (sum(v == "model_a" for v in counted) + 0.5 * sum(v == "tie" for v in counted)) / len(counted)


def _outcome(winner: str, model_a: str, model_b: str) -> str | None:
    """A verdict as the winning model's id, or 'tie'; None when unusable."""
    w = (winner or "").strip().lower()
    if w == "model_a":
        return model_a
    if w == "model_b":
        return model_b
    if w.startswith("tie"):  # 'tie' and 'tie (bothbad)'
        return "tie"
    return None


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' labels: (observed - chance agreement) / (1 - chance)."""
    n = len(pairs)
    if n == 0:
        return None
    labels = {x for p in pairs for x in p}
    observed = sum(a == b for a, b in pairs) / n
    chance = sum((sum(a == k for a, _ in pairs) / n) * (sum(b == k for _, b in pairs) / n) for k in labels)
    if chance >= 1.0:
        return 1.0 if observed == 1.0 else None
    return (observed - chance) / (1 - chance)


def human_judge_agreement(store, judge_model: str | None = None) -> dict[str, Any]:
    """How often the judge agrees with human voters, over battles that have both.

    Each human vote is paired with the judge's verdict on the same battle, and outcomes
    are compared as "which model won, or tie" (the vote's model names are matched to the
    battle's, so it does not matter in which order the voter saw the sides). Reports agreement over all pairs, over the pairs where neither called a
    tie (MT-Bench's "w/o tie" figure), and Cohen's kappa (agreement beyond chance).
    """
    sql = (
        "SELECT v.battle_id, v.voter, v.model_a AS v_a, v.model_b AS v_b, v.winner AS v_winner, "
        "b.model_a AS b_a, b.model_b AS b_b, j.winner AS j_winner, j.judge_model "
        "FROM votes v JOIN battles b ON b.id = v.battle_id JOIN judge_verdicts j ON j.battle_id = v.battle_id"
    )
    params: list[Any] = []
    if judge_model:
        sql += " WHERE j.judge_model = ?"
        params.append(judge_model)
    pairs: list[tuple[str, str]] = []
    battles: set[str] = set()
    for row in store.query(sql, params):
        human = _outcome(row["v_winner"], row["v_a"], row["v_b"])
        machine = _outcome(row["j_winner"], row["b_a"], row["b_b"])
        if human is None or machine is None:
            continue
        # label both by the battle's side (model_a / model_b / tie) so kappa sees three fixed classes
        side = {row["b_a"]: "model_a", row["b_b"]: "model_b", "tie": "tie"}
        human, machine = side.get(human), side.get(machine)
        if human is None or machine is None:
            continue
        pairs.append((human, machine))
        battles.add(row["battle_id"])
    decisive = [(h, m) for h, m in pairs if h != "tie" and m != "tie"]
    return {
        "n_battles": len(battles),
        "n_pairs": len(pairs),
        "agreement": (sum(h == m for h, m in pairs) / len(pairs)) if pairs else None,
        "n_decisive": len(decisive),
        "agreement_without_ties": (sum(h == m for h, m in decisive) / len(decisive)) if decisive else None,
        "kappa": cohen_kappa(pairs),
    }


def verdicts_frame(store, judge_model: str | None = None, include_flagged: bool = False):
    """The judge's decided verdicts as battles (model_a, model_b, winner), like the votes frame."""
    import pandas as pd

    sql = ("SELECT b.model_a, b.model_b, j.winner FROM judge_verdicts j JOIN battles b ON b.id = j.battle_id "
           "WHERE j.winner IN ('model_a', 'model_b', 'tie')")
    params: list[Any] = []
    if not include_flagged:
        sql += " AND b.flagged_reason IS NULL"
    if judge_model:
        sql += " AND j.judge_model = ?"
        params.append(judge_model)
    return pd.DataFrame(store.query_rows(sql, params), columns=["model_a", "model_b", "winner"])


def judge_leaderboard(store, judge_model: str | None = None, rounds: int = 1000) -> list[dict[str, Any]]:
    """The models rated from the judge's verdicts (Bradley-Terry with bootstrap intervals), best first.

    Kept apart from the human leaderboard: a judge is a second opinion, and where the two
    disagree `human_judge_agreement` says how far to trust it.
    """
    from . import ratings

    return ratings.leaderboard(verdicts_frame(store, judge_model), rounds=rounds, names=ratings.display_names(store))

