"""Style control: a model that wins only by writing longer answers falls back to its rival once length is
held equal; a model that is better for real keeps its lead, even when it also writes longer answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ftassist.arena import ratings, style


def _battles(n: int, true_gap: float, length_logit: float, seed: int = 0) -> pd.DataFrame:
    """`n` votes between "long" (answers of 60-300 words) and "short" (20-160 words), sides at random.

    P(a wins) = sigmoid(ln10 * gap(a, b) / 400 + length_logit * (len_a - len_b) / (len_a + len_b)):
    `true_gap` is how much better "long" really is, in rating points; `length_logit` how much voters
    reward length whatever the answer says.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        long_len, short_len = int(rng.integers(60, 300)), int(rng.integers(20, 160))
        if rng.random() < 0.5:
            a, b, len_a, len_b, gap = "long", "short", long_len, short_len, true_gap
        else:
            a, b, len_a, len_b, gap = "short", "long", short_len, long_len, -true_gap
        logit = np.log(10) * gap / 400 + length_logit * (len_a - len_b) / (len_a + len_b)
        winner = "model_a" if rng.random() < 1 / (1 + np.exp(-logit)) else "model_b"
        rows.append({"model_a": a, "model_b": b, "winner": winner,
                     "answer_a": "word " * len_a, "answer_b": "word " * len_b})
    return pd.DataFrame(rows)


def test_a_model_that_wins_only_by_length_falls_to_its_rival():
    df = _battles(500, true_gap=0.0, length_logit=5.0)
    rows = {r["model_id"]: r for r in ratings.leaderboard(df, rounds=300, seed=1)}
    long, short = rows["long"], rows["short"]
    assert long["rating"] - short["rating"] > 120  # the plain table says "long" is far better ...
    assert long["ci_low"] > short["ci_high"] and long["rank"] == 1 and short["rank"] == 2
    assert abs(long["style_rating"] - short["style_rating"]) < 40  # ... held equal on length, it is not
    assert long["style_ci_low"] < short["style_ci_high"] and long["style_rank"] == short["style_rank"] == 1
    assert long["style_points"] > 60 and long["length_points"] > 60  # its lead is style, and length it is
    assert short["style_points"] < -60


def test_a_genuinely_better_model_keeps_its_lead_even_when_it_is_also_longer():
    df = _battles(500, true_gap=150.0, length_logit=0.0)
    rows = {r["model_id"]: r for r in ratings.leaderboard(df, rounds=300, seed=1)}
    long, short = rows["long"], rows["short"]
    assert long["style_rating"] - short["style_rating"] > 60
    assert long["style_ci_low"] > short["style_ci_high"] and long["style_rank"] == 1 and short["style_rank"] == 2
    assert long["style_points"] < long["rating"] - 1000  # most of its lead is not style
    fitted = style.style_control(df, rounds=200, seed=0)
    length = fitted["coefficients"]["length"]
    assert length["ci_low"] < 80  # voters did not reward length here (a small, uncertain coefficient)


def test_the_style_coefficient_measures_what_length_is_worth():
    rewarded = style.style_control(_battles(400, 0.0, 5.0), rounds=200)
    assert rewarded["features"] == ["length"]  # no markdown in these answers: the other features are left out
    assert rewarded["coefficients"]["length"]["ci_low"] > 150
    assert rewarded["votes"] == 400


def test_markdown_counts():
    text = "# Title\n\nSome **bold** and __more__.\n\n- one\n- two\n1. first\n  * nested\n## Next\nplain"
    assert style.answer_style(text) == {"length": 17, "headers": 2, "lists": 4, "bold": 2}
    assert style.answer_style(None) == {"length": 0, "headers": 0, "lists": 0, "bold": 0}
    matrix, kept = style.style_features(["a b c", "**x** y", "z"], ["a", "b", "c d"])
    assert kept == ["length", "bold"] and matrix.shape == (3, 2)
    assert np.allclose(matrix.mean(axis=0), 0) and np.allclose(matrix.std(axis=0), 1)


def test_votes_without_answers_have_no_style_figures():
    plain = pd.DataFrame({"model_a": ["x", "y", "x"], "model_b": ["y", "x", "y"], "winner": ["model_a"] * 3})
    rows = ratings.leaderboard(plain, rounds=20)
    assert all(r["style_rating"] is None and r["style_points"] is None for r in rows)
    assert style.style_control(plain) is None
    mixed = plain.assign(answer_a=["long answer here", None, "long answer here"], answer_b=["no", None, "x"])
    assert style.style_control(mixed, rounds=0)["votes"] == 2  # only the votes whose battle has answers


def test_stored_votes_carry_their_answers_into_the_leaderboard(store):
    from ftassist.arena import battles

    rng = np.random.default_rng(3)
    for i in range(60):
        long_len, short_len = int(rng.integers(60, 200)), int(rng.integers(10, 80))
        battle = battles.add_battle(store, f"Question {i}?", "verbose", "terse", "word " * long_len,
                                    "word " * short_len)
        winner = "model_a" if rng.random() < 0.8 else "model_b"
        store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner) VALUES (?, ?, ?, ?, ?, ?)",
                      [f"v{i}", battle, f"u{i}", "verbose", "terse", winner])
    frame = ratings.votes_frame(store)
    assert {"answer_a", "answer_b"} <= set(frame.columns) and frame["answer_a"].notna().all()
    rows = {r["model_id"]: r for r in ratings.leaderboard(frame, rounds=50)}
    assert rows["verbose"]["style_rating"] is not None


@pytest.mark.parametrize("rounds", [0, 40])
def test_anchor_moves_both_figures_alike(rounds):
    df = _battles(200, 0.0, 5.0)
    rows = {r["model_id"]: r for r in ratings.leaderboard(df, rounds=rounds, anchor=("short", 1200.0))}
    assert rows["short"]["rating"] == pytest.approx(1200.0) and rows["short"]["style_rating"] == pytest.approx(1200.0)
