"""The LLM judge: both orders, flips become ties, verdicts stored apart, human agreement."""

from __future__ import annotations

import re

import pytest

from ftassist.arena import judge, models
from ftassist.store import get_store


def _answers_in(messages: list[dict]) -> tuple[str, str]:
    user = messages[-1]["content"]
    a = re.search(r"\[The Start of Assistant A's Answer\]\n(.*?)\n\[The End", user, re.S).group(1)
    b = re.search(r"\[The Start of Assistant B's Answer\]\n(.*?)\n\[The End", user, re.S).group(1)
    return a, b


def prefers_good(messages: list[dict]) -> str:
    """A consistent judge: prefers the answer containing 'good', wherever it is shown."""
    a, b = _answers_in(messages)
    if "good" in a and "good" not in b:
        return "Assistant A is more helpful. [[A]]"
    if "good" in b and "good" not in a:
        return "Assistant B is more helpful. [[B]]"
    return "Both are similar. [[C]]"


def always_first(messages: list[dict]) -> str:
    """A position-biased judge: always picks whatever it reads first."""
    return "I prefer the first. [[A]]"


@pytest.fixture
def judge_cfg(fake_llm):
    return {"kind": "openai_compatible", "base_url": fake_llm.base_url, "model": "judge"}


def test_parse_and_combine():
    assert judge.parse_verdict("blah [[B]]") == "B"
    assert judge.parse_verdict("first [[A]] then, on reflection, [[C]]") == "C"
    assert judge.parse_verdict("no verdict") is None
    assert judge.combine("A", "B") == "model_a"  # A first; in the swapped order A sits in position B
    assert judge.combine("B", "A") == "model_b"
    assert judge.combine("A", "A") == "tie"  # flips with the order: position bias, a tie
    assert judge.combine("C", "C") == "tie"
    assert judge.combine("A", "C") == "tie"
    assert judge.combine(None, "A") == "error"


def test_judge_pair_both_orders_agree(fake_llm, judge_cfg):
    fake_llm.judge = prefers_good
    res = judge.judge_pair(judge_cfg, "Explain rain.", "a good answer", "a poor answer")
    assert res["winner"] == "model_a" and (res["verdict_ab"], res["verdict_ba"]) == ("A", "B")
    res = judge.judge_pair(judge_cfg, "Explain rain.", "a poor answer", "a good answer")
    assert res["winner"] == "model_b"
    # asked twice, swapped, at temperature 0
    calls = fake_llm.requests[-2:]
    assert all(c["temperature"] == 0.0 for c in calls)
    shown = {_answers_in(c["messages"]) for c in calls}  # sent concurrently: arrival order varies
    assert shown == {("a poor answer", "a good answer"), ("a good answer", "a poor answer")}
    assert "[[A]]" in calls[0]["messages"][0]["content"]


def test_judge_pair_flip_is_a_tie(fake_llm, judge_cfg):
    fake_llm.judge = always_first
    res = judge.judge_pair(judge_cfg, "Explain rain.", "a good answer", "a poor answer")
    assert res["winner"] == "tie" and (res["verdict_ab"], res["verdict_ba"]) == ("A", "A")


def test_scripted_verdicts_and_unreadable(fake_llm, judge_cfg):
    fake_llm.judge = ["[[B]]", "garbled"]
    res = judge.judge_pair(judge_cfg, "q", "x", "y")
    assert res["winner"] == "error" and "no [[A]]" in res["error"]


def _battle(bid: str, a: str, b: str, answer_a: str, answer_b: str) -> None:
    get_store().execute(
        "INSERT INTO battles (id, prompt, model_a, model_b, answer_a, answer_b) VALUES (?, ?, ?, ?, ?, ?)",
        [bid, "Explain rain.", a, b, answer_a, answer_b],
    )


def _vote(bid: str, voter: str, a: str, b: str, winner: str) -> None:
    get_store().execute(
        "INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner) VALUES (?, ?, ?, ?, ?, ?)",
        [f"{bid}-{voter}", bid, voter, a, b, winner],
    )


def test_judge_battles_stores_verdicts_apart_and_skips_done(fake_llm, judge_cfg, store):
    _battle("b1", "base", "tuned", "a poor answer", "a good answer")
    _battle("b2", "base", "tuned", "a good answer", "a poor answer")
    _battle("b3", "base", "tuned", "same", "same")
    fake_llm.judge = prefers_good
    results = judge.judge_battles(store, judge_cfg)
    assert {r["battle_id"]: r["winner"] for r in results} == {"b1": "model_b", "b2": "model_a", "b3": "tie"}
    rows = get_store().query("SELECT battle_id, judge_model, winner, verdict_ab, verdict_ba FROM judge_verdicts "
                             "ORDER BY battle_id")
    assert [(r["battle_id"], r["winner"]) for r in rows] == [("b1", "model_b"), ("b2", "model_a"), ("b3", "tie")]
    assert rows[0]["judge_model"] == "judge" and rows[0]["verdict_ab"] == "B" and rows[0]["verdict_ba"] == "A"
    said = get_store().query("SELECT explanation_ab, explanation_ba FROM judge_verdicts WHERE battle_id = 'b1'")[0]
    assert said == {"explanation_ab": "Assistant B is more helpful. [[B]]",
                    "explanation_ba": "Assistant A is more helpful. [[A]]"}  # the judge's own words, each order
    assert get_store().query_rows("SELECT count(*) FROM votes")[0][0] == 0  # never mixed with human votes
    n_requests = len(fake_llm.requests)
    assert judge.judge_battles(store, judge_cfg) == []  # already judged
    assert len(fake_llm.requests) == n_requests
    redo = judge.judge_battles(store, judge_cfg, ["b1"], redo=True)
    assert len(redo) == 1
    assert get_store().query_rows("SELECT count(*) FROM judge_verdicts")[0][0] == 3


def test_judge_failure_not_stored(fake_llm, judge_cfg, monkeypatch, store):
    _battle("b1", "base", "tuned", "x", "y")
    cfg = dict(judge_cfg, model="no-such-judge")
    res = judge.judge_battles(store, cfg)
    assert res[0]["error"] and res[0]["winner"] == "error"
    assert get_store().query_rows("SELECT count(*) FROM judge_verdicts")[0][0] == 0


def test_judge_must_be_an_api_model(store):
    local = models.add_model(store, "hf", "tiny", {"model": "org/some-hub-model"})
    with pytest.raises(models.ModelError, match="API model"):
        judge.resolve_judge(store, local)
    with pytest.raises(models.ModelError, match="API model"):
        judge.judge_battles(store, {"kind": "hf", "model": "org/x"})


def test_human_judge_agreement_crafted():
    # b1: judge says tuned (model_b); humans: two say tuned, one says base -> 2 agree of 3
    # b2: judge tie; one human tie (bothbad) -> agree
    # b3: judge says base (model_a); the voter saw the sides swapped (vote's model_a = tuned), chose base -> agree
    # b4: a human vote but no verdict -> not counted; b5: a verdict but no vote -> not counted
    for bid in ("b1", "b2", "b3", "b4", "b5"):
        _battle(bid, "base", "tuned", "x", "y")
    store = get_store()
    for bid, winner in (("b1", "model_b"), ("b2", "tie"), ("b3", "model_a"), ("b5", "model_a")):
        store.execute("INSERT INTO judge_verdicts (id, battle_id, judge_model, winner) VALUES (?, ?, 'j', ?)",
                      [f"j-{bid}", bid, winner])
    _vote("b1", "u1", "base", "tuned", "model_b")
    _vote("b1", "u2", "base", "tuned", "model_b")
    _vote("b1", "u3", "base", "tuned", "model_a")
    _vote("b2", "u1", "base", "tuned", "tie (bothbad)")
    _vote("b3", "u1", "tuned", "base", "model_b")
    _vote("b4", "u1", "base", "tuned", "model_a")
    out = judge.human_judge_agreement(store)
    assert out["n_battles"] == 3 and out["n_pairs"] == 5
    assert out["agreement"] == pytest.approx(4 / 5)
    assert out["n_decisive"] == 4 and out["agreement_without_ties"] == pytest.approx(3 / 4)
    # kappa by hand: human labels b,b,a,tie,a ; judge b,b,b,tie,a
    # p_o = 4/5; p_e = P(a)=2/5*1/5 + P(b)=2/5*3/5 + P(tie)=1/5*1/5 = (2 + 6 + 1)/25 = 9/25
    assert out["kappa"] == pytest.approx((4 / 5 - 9 / 25) / (1 - 9 / 25))
    assert judge.human_judge_agreement(store, judge_model="other")["n_pairs"] == 0


def test_judge_win_rate():
    assert judge.judge_win_rate(["model_a", "tie", "model_b", "model_a", "error"]) == pytest.approx(2.5 / 4)
    assert judge.judge_win_rate([]) is None


def test_judge_leaderboard_rates_models_from_verdicts_alone(fake_llm, judge_cfg, store):
    for i in range(12):  # tuned writes the good answer in 10 of 12 battles, sides alternating
        good_is_tuned = i < 10
        a, b = ("tuned", "base") if i % 2 else ("base", "tuned")
        answer_tuned, answer_base = ("a good answer", "a poor answer") if good_is_tuned else ("a poor one", "a good one")
        _battle(f"b{i}", a, b, answer_tuned if a == "tuned" else answer_base, answer_tuned if b == "tuned" else answer_base)
    _battle("flagged", "base", "tuned", "a good answer", "a poor answer")
    get_store().execute("UPDATE battles SET flagged_reason = 'names a model' WHERE id = 'flagged'")
    fake_llm.judge = prefers_good
    judge.judge_battles(store, judge_cfg)
    assert store.query_rows("SELECT DISTINCT judge_model FROM judge_verdicts") == [("judge",)]
    frame = judge.verdicts_frame(store, "judge")
    assert len(frame) == 12  # the flagged battle's verdict is not counted, as its votes are not
    board = judge.judge_leaderboard(store, "judge", rounds=50)
    assert [r["model"] for r in board] == ["tuned", "base"]
    assert (board[0]["wins"], board[0]["losses"], board[0]["ties"]) == (10, 2, 0)
    assert judge.judge_leaderboard(store, "someone-else", rounds=10) == []
    assert get_store().query_rows("SELECT count(*) FROM votes")[0][0] == 0
