"""The Leaderboard shows, beside each model's human rating, its newest stored automatic measures (with their
intervals and the data's file name and short hash) and the LLM judge's rating with how often the judge matches
the human majority; a model never evaluated says so. Everything is stored through the real use cases (the
Evaluate step against the OpenAI stand-in, the judge, votes), then read by the use case, the CLI and the tab."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from test_evaluate_step import LABELS, register_api_models
from test_judge import prefers_good

from ftassist.arena import battles
from ftassist.arena import judge as arena_judge
from ftassist.cli import main
from ftassist.usecases import arena as arena_cases
from ftassist.usecases import evaluation
from ftassist.usecases.context import Context
from ftassist.usecases.leaderboard_measures import majority_agreement


def _chat_file(path, labels: list[str]):
    rows = [{"messages": [{"role": "user", "content": f"review {i}"}, {"role": "assistant", "content": label}]}
            for i, label in enumerate(labels)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def arena(ctx, fake_llm, tmp_path):
    """Two evaluations (the second, on later.jsonl, is the newest), judged battles with human votes, and a
    third model with votes that was never evaluated."""
    register_api_models(ctx, fake_llm)
    arena_cases.register_model(ctx, "openai_compatible", "Referee", {"base_url": fake_llm.base_url, "model": "judge"})
    first = evaluation.evaluate_models(ctx, ["api base", "api tuned"], str(_chat_file(tmp_path / "first.jsonl", LABELS)),
                                       rounds=200)
    later = tmp_path / "later.jsonl"
    newest = evaluation.evaluate_models(ctx, ["api base", "api tuned"], str(_chat_file(later, LABELS[:5])), rounds=200)

    # Seven battles; the judge prefers the answer that says "good": api tuned's in battles 0-5, api base's in 6.
    # Human votes: battles 0-4 one voter for tuned; battle 5 split one-one (no majority); battle 6 two of three
    # for tuned. So the judge matches the majority on 5 of the 6 battles that have one.
    store = ctx.store
    humans = [["tuned"]] * 5 + [["tuned", "base"], ["tuned", "tuned", "base"]]
    voters = [f"voter-{uuid.uuid4().hex[:8]}" for _ in range(3)]  # fresh: the per-voter rate limit is per process
    for number, choices in enumerate(humans):
        tuned_answer, base_answer = ("a good answer", "a poor answer") if number < 6 else ("a poor one", "a good one")
        battle = battles.add_battle(store, f"Question {number}?", "api-tuned", "api-base", tuned_answer, base_answer)
        for voter, choice in enumerate(choices):
            view = battles._serve(store, battle, f"Question {number}?", tuned_answer, base_answer,
                                  voter=voters[voter])
            tuned_left = view.answer_a == tuned_answer
            battles.vote(store, view.token, voters[voter], "A" if tuned_left == (choice == "tuned") else "B")
    fake_llm.judge = prefers_good
    judged = arena_cases.judge_battles(ctx, judge="Referee", rounds=100)
    assert judged.judged == 7 and judged.failed == 0
    votes = tmp_path / "votes.csv"
    votes.write_text("model_a,model_b,winner\n" + "other,api tuned,model_b\n" * 3 + "other,api base,model_a\n" * 2,
                     encoding="utf-8")
    assert arena_cases.import_votes(ctx, str(votes)).imported == 5
    return {"first": first, "newest": newest, "later": later}


def _wilson(successes: int, n: int) -> list[float]:
    from scipy import stats

    interval = stats.binomtest(successes, n).proportion_ci(method="wilson")
    return [round(interval.low, 4), round(interval.high, 4)]


def test_the_leaderboard_use_case_shows_the_newest_measures_and_the_judge(ctx, arena):
    board = arena_cases.leaderboard(ctx, rounds=100)
    rows = {r["model_id"]: r for r in board.rows}
    assert set(rows) == {"api-tuned", "api-base", "other"}
    tuned, base, other = rows["api-tuned"], rows["api-base"], rows["other"]

    # the newest evaluation (later.jsonl: right on 4 of 5), read as stored, not the first (5 of 6)
    stored = evaluation.evaluation_history(ctx, model="api tuned", limit=1)[0]
    measured = tuned["evaluation"]
    assert measured["evaluation_id"] == arena["newest"].id != arena["first"].id
    assert measured["exact_match"] == pytest.approx(4 / 5) == stored.measures["exact_match"]
    assert measured["rouge_l"] == stored.measures["rouge_l"] and measured["bleu"] == 0.0
    assert measured["intervals"] == stored.measures["intervals"] and measured["intervals"]["exact_match"] is not None
    assert measured["perplexity"] is None  # API models: perplexity needs local weights
    digest = hashlib.sha256(arena["later"].read_bytes()).hexdigest()
    assert (measured["data"], measured["data_hash"], measured["data_hash_short"]) == ("later.jsonl", digest, digest[:8])
    assert measured["labels"] is True and measured["n_scored"] == 5 and measured["base"] == "api-base"
    assert measured["forgetting"]["accuracy_change"] == pytest.approx(-0.25) and measured["forgetting"]["forgot"]
    assert tuned["evaluation_note"] is None and base["evaluation"]["exact_match"] == 0.0
    assert base["evaluation"]["forgetting"] is None  # the base is what the others are compared with

    # never evaluated: said so, with the step to run
    assert other["evaluation"] is None and "run the Evaluate step" in other["evaluation_note"]
    assert board.not_evaluated == ["other"]

    # the judge: 5 of the 6 battles with a majority agree; the split battle is left out
    assert board.judge == {"judge": "Referee", "split": 1,
                           "agreement": {"agree": 5, "battles": 6, "rate": round(5 / 6, 4), "interval": _wilson(5, 6)}}
    assert tuned["judge"]["agreement"] == base["judge"]["agreement"] == board.judge["agreement"]
    assert other["judge"] is None  # the judge never saw it
    judged = {r["model_id"]: r for r in arena_judge.judge_leaderboard(ctx.store, "referee", rounds=100)}
    assert tuned["judge"]["verdicts"] == 7 and (judged["api-tuned"]["wins"], judged["api-tuned"]["losses"]) == (6, 1)
    assert (tuned["judge"]["rating"], tuned["judge"]["ci_low"], tuned["judge"]["ci_high"]) == (
        judged["api-tuned"]["rating"], judged["api-tuned"]["ci_low"], judged["api-tuned"]["ci_high"])
    assert tuned["judge"]["rating"] > base["judge"]["rating"]

    # the human figures are untouched by what sits beside them: 10 votes on the battles, 5 imported
    assert board.votes == 15 and (tuned["votes"], base["votes"], other["votes"]) == (13, 12, 5)
    assert (tuned["wins"], tuned["losses"]) == (11, 2)

    summary = arena_cases.leaderboard_summary(ctx, rounds=100)
    assert summary.judge == board.judge and summary.not_evaluated == ["other"]
    assert {r["model_id"]: r["evaluation"] for r in summary.rows} == {r["model_id"]: r["evaluation"] for r in board.rows}


def test_the_cli_shows_them(arena, capsys):
    assert main(["arena", "leaderboard", "--json", "--rounds", "100"]) == 0
    rows = {r["model_id"]: r for r in json.loads(capsys.readouterr().out)}
    tuned = rows["api-tuned"]
    assert tuned["evaluation"]["exact_match"] == pytest.approx(0.8)
    assert tuned["evaluation"]["data"] == "later.jsonl"
    assert tuned["evaluation"]["data_hash_short"] == hashlib.sha256(arena["later"].read_bytes()).hexdigest()[:8]
    assert tuned["judge"]["agreement"] == {"agree": 5, "battles": 6, "rate": round(5 / 6, 4),
                                           "interval": _wilson(5, 6)}
    assert rows["other"]["evaluation"] is None and "Evaluate step" in rows["other"]["evaluation_note"]

    assert main(["arena", "leaderboard", "--rounds", "100"]) == 0
    text = capsys.readouterr().out
    interval = tuned["evaluation"]["intervals"]["exact_match"]
    assert f"api tuned: ROUGE-L 0.8 ({interval[0]:.3g} to" in text
    assert f"task accuracy 0.8 ({interval[0]:.3g} to {interval[1]:.3g})" in text
    assert "general answers -25 points vs the base (it forgot)" in text
    assert f"on later.jsonl (sha256 {tuned['evaluation']['data_hash_short']}, 5 examples" in text
    assert "other: not evaluated: run the Evaluate step" in text
    low, high = _wilson(5, 6)
    assert (f"LLM judge Referee: agrees with the human majority on 5 of 6 battles (83%, 95% CI {low:.0%} to "
            f"{high:.0%}); its ratings, from its verdicts alone:") in text
    judge = tuned["judge"]
    assert (f"api tuned: rating {judge['rating']:.0f} ({judge['ci_low']:.0f} to {judge['ci_high']:.0f}, 7 verdicts), "
            "agrees with the human majority on 5 of 6 battles") in text


def test_the_tab_shows_them(arena):
    from ftassist.ui import leaderboard

    headline, table, _, _ = leaderboard.refresh(Context.open(), 100)
    low, high = _wilson(5, 6)
    assert (f"its verdict matches the human majority on 5 of 6 battles both judged (83%, 95% interval {low:.0%} "
            f"to {high:.0%})") in headline
    assert "Not evaluated: other. Run the Evaluate step" in headline
    rows = table.set_index("model")
    assert list(table.columns) == leaderboard.BOARD_COLUMNS
    board = {r["model"]: r for r in arena_cases.leaderboard(Context.open(), rounds=100).rows}
    interval = board["api tuned"]["evaluation"]["intervals"]["exact_match"]
    assert rows.loc["api tuned", "exact match / task accuracy"] == f"0.8 ({interval[0]:.3g} to {interval[1]:.3g})"
    digest = hashlib.sha256(arena["later"].read_bytes()).hexdigest()
    assert rows.loc["api tuned", "measured on"] == f"later.jsonl ({digest[:8]})"
    assert rows.loc["api tuned", "perplexity"] == "-"
    assert rows.loc["api tuned", "general answers vs base"].endswith(": forgot")
    assert rows.loc["api tuned", "general answers vs base"].startswith("-25 points (")
    assert rows.loc["api tuned", "judge agrees with human majority"] == f"83% of 6 battles ({low:.0%} to {high:.0%})"
    judge = board["api tuned"]["judge"]
    assert rows.loc["api tuned", "LLM judge rating"] == f"{judge['rating']:.0f} ({judge['ci_low']:.0f} to {judge['ci_high']:.0f})"
    assert rows.loc["other", "ROUGE-L"] == "not evaluated: run the Evaluate step"
    assert rows.loc["other", "LLM judge rating"] == "no verdict"


def test_majority_agreement_by_hand():
    def row(battle, judged, vote_a, vote_b, voted):
        return {"battle_id": battle, "model_a": "x", "model_b": "y", "judge_winner": judged,
                "vote_a": vote_a, "vote_b": vote_b, "vote_winner": voted}

    rows = [
        row("b1", "model_a", "x", "y", "model_a"),  # agree
        row("b2", "model_b", "y", "x", "model_a"),  # the voter saw the sides swapped and chose y: agree
        row("b3", "tie", "x", "y", "tie (bothbad)"), row("b3", "tie", "x", "y", "tie"),  # a tie majority: agree
        row("b4", "model_a", "x", "y", "model_b"), row("b4", "model_a", "x", "y", "model_b"),
        row("b4", "model_a", "x", "y", "model_a"),  # majority y: disagree
        row("b5", "model_a", "x", "y", "model_a"), row("b5", "model_a", "x", "y", "model_b"),  # split: left out
        row("b6", "error", "x", "y", "model_a"),  # no verdict: left out
    ]
    out = majority_agreement(rows)
    assert out["split"] == 1
    assert out["overall"] == {"agree": 3, "battles": 4, "rate": 0.75, "interval": None}  # under 5: no interval
    assert out["by_model"]["x"] == out["by_model"]["y"] == out["overall"]
    more = majority_agreement(rows + [row(f"c{i}", "model_a", "x", "y", "model_a") for i in range(2)])
    assert more["overall"] == {"agree": 5, "battles": 6, "rate": round(5 / 6, 4), "interval": _wilson(5, 6)}
    assert majority_agreement([]) == {"overall": None, "split": 0, "by_model": {}}


def test_latest_by_model_reads_the_newest_row():
    def stored(evaluation_id, created_at, exact_match):
        return {"evaluation_id": evaluation_id, "created_at": created_at, "model_id": "m", "base_model_id": None,
                "data_path": f"/data/{evaluation_id}.jsonl", "data_hash": "ab" * 32, "data_source": None,
                "n_scored": 7, "labels": False, "sampling_json": '{"temperature": 0.0}',
                "measures_json": json.dumps({"exact_match": exact_match, "intervals": {"exact_match": [0.1, 0.9]}}),
                "verdict": None}

    newest = evaluation.latest_by_model([stored("old", "2024-01-01 10:00:00", 0.2),
                                         stored("new", "2024-03-01 10:00:00", 0.6),
                                         stored("mid", "2024-02-01 10:00:00", 0.4)])["m"]
    assert (newest["evaluation_id"], newest["exact_match"], newest["data"]) == ("new", 0.6, "new.jsonl")
    assert newest["intervals"] == {"exact_match": [0.1, 0.9]} and newest["data_hash_short"] == "abababab"
    assert newest["rouge_l"] is None and newest["sampling"] == {"temperature": 0.0}
