import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ftassist.arena import ratings


def _votes(rows):
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def simulate(true: dict[str, float], n: int, seed: int, tie_rate: float = 0.0) -> pd.DataFrame:
    """Votes drawn from a Bradley-Terry model with the given (Elo-scale) strengths."""
    rng = np.random.default_rng(seed)
    names = list(true)
    values = np.array([true[m] for m in names])
    a = rng.integers(0, len(names), n)
    b = (a + rng.integers(1, len(names), n)) % len(names)
    p_a = 1 / (1 + 10 ** ((values[b] - values[a]) / 400))
    u = rng.random(n)
    decisive = u >= tie_rate
    u2 = rng.random(n)
    winner = np.where(~decisive, "tie", np.where(u2 < p_a, "model_a", "model_b"))
    return pd.DataFrame({"model_a": np.array(names)[a], "model_b": np.array(names)[b], "winner": winner})


def test_elo_matches_hand_computation():
    df = _votes([("x", "y", "model_a"), ("x", "y", "tie"), ("y", "x", "model_a")])
    elo = ratings.compute_elo(df)
    # vote 1: equal ratings, expected 0.5 each; K=4 -> x 1002, y 998
    x, y = 1002.0, 998.0
    # vote 2: tie; x is expected to score 1 / (1 + 10^((998 - 1002) / 400))
    ex = 1 / (1 + 10 ** ((y - x) / 400))
    x, y = x + 4 * (0.5 - ex), y + 4 * (0.5 - (1 - ex))
    # vote 3: y (as model_a) beats x
    ey = 1 / (1 + 10 ** ((x - y) / 400))
    x, y = x + 4 * (0 - (1 - ey)), y + 4 * (1 - ey)
    assert elo["x"] == pytest.approx(x, abs=1e-9)
    assert elo["y"] == pytest.approx(y, abs=1e-9)
    assert elo["x"] + elo["y"] == pytest.approx(2000)


def test_win_rates_and_counts_by_hand():
    df = _votes([
        ("x", "y", "model_a"), ("x", "y", "model_a"), ("y", "x", "model_a"),
        ("x", "y", "tie"), ("x", "z", "tie (bothbad)"), ("z", "x", "model_b"),
    ])
    rec = ratings.model_records(df)
    assert (rec["x"]["wins"], rec["x"]["losses"], rec["x"]["ties"], rec["x"]["votes"]) == (3, 1, 2, 6)
    assert rec["x"]["win_rate"] == pytest.approx((3 + 0.5 * 2) / 6)
    assert (rec["y"]["wins"], rec["y"]["losses"], rec["y"]["ties"]) == (1, 2, 1)
    assert (rec["z"]["wins"], rec["z"]["losses"], rec["z"]["ties"]) == (0, 1, 1)
    rates, counts = ratings.pairwise_win_rate(df)
    assert counts.loc["x", "y"] == 4 and counts.loc["y", "x"] == 4
    assert rates.loc["x", "y"] == pytest.approx(2.5 / 4)
    assert rates.loc["y", "x"] == pytest.approx(1.5 / 4)
    assert rates.loc["x", "z"] == pytest.approx(1.5 / 2)
    assert math.isnan(rates.loc["y", "z"]) and counts.loc["y", "z"] == 0

    head = ratings.headline(df, "x", "y")
    assert (head["wins"], head["losses"], head["ties"], head["votes"]) == (2, 1, 1, 4)
    assert head["win_rate"] == pytest.approx(0.625)
    assert (head["win_rate_low"], head["win_rate_high"]) == pytest.approx(ratings.wilson_interval(2.5, 4))


def test_wilson_on_a_known_case():
    low, high = ratings.wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # textbook value for 8/10
    ci = stats.binomtest(8, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert ratings.wilson_interval(0, 0) == (0.0, 1.0)


def test_bradley_terry_recovers_known_strengths():
    true = {"weak": 900.0, "mid": 1000.0, "good": 1080.0, "best": 1220.0}
    df = simulate(true, 20_000, seed=7)
    rows = ratings.leaderboard(df, rounds=300, seed=1)
    assert [r["model"] for r in rows] == ["best", "good", "mid", "weak"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    centre = np.mean(list(true.values()))
    inside = 0
    for r in rows:
        truth = true[r["model"]] - centre + 1000  # ratings are centred on 1000
        half = (r["ci_high"] - r["ci_low"]) / 2
        assert 0 < half < 20
        inside += r["ci_low"] <= truth <= r["ci_high"]
        # each 95% interval may miss now and then; none may miss by more than half its width
        assert abs(truth - (r["ci_low"] + r["ci_high"]) / 2) <= 1.5 * half, r
        assert abs(r["rating"] - truth) < 15
    assert inside >= 3


def test_ties_count_half_each_way_as_fastchat():
    # x beats y twice and they tie twice: MLE p = (2 + 1) / 4 = 0.75
    df = _votes([("x", "y", "model_a"), ("y", "x", "model_b"), ("x", "y", "tie"), ("y", "x", "tie (bothbad)")])
    bt = ratings.compute_bt(df)
    expected = 400 * math.log10(0.75 / 0.25)
    assert bt["x"] - bt["y"] == pytest.approx(expected, abs=0.05)
    assert (bt["x"] + bt["y"]) / 2 == pytest.approx(1000)
    anchored = ratings.compute_bt(df, anchor=("y", 1000))
    assert anchored["y"] == pytest.approx(1000) and anchored["x"] == pytest.approx(1000 + expected, abs=0.05)


def test_vectorised_bootstrap_equals_one_fit_per_round():
    df = simulate({"a": 1000, "b": 1050, "c": 1150}, 3000, seed=3, tie_rate=0.2)
    boot = ratings.bootstrap_bt(df, rounds=20, seed=5)
    matchups, outcomes, models, weights = ratings.preprocess_for_bt(df)
    draws = np.random.default_rng(5).multinomial(int(weights.sum()), weights / weights.sum(), size=20)
    for r in (0, 7, 19):
        single = ratings.fit_bt(matchups, outcomes, draws[r].astype(float), len(models)) * 400 + 1000
        assert boot.iloc[r][models].to_numpy() == pytest.approx(single, abs=0.05)


def test_rank_follows_fastchat_rule():
    low = {"a": 1100, "b": 1050, "c": 900}
    high = {"a": 1200, "b": 1150, "c": 1040}
    assert ratings.rank_models(low, high) == {"a": 1, "b": 1, "c": 3}


def test_leaderboard_keys_and_bad_input():
    rows = ratings.leaderboard(_votes([("x", "y", "model_a"), ("x", "y", "model_b"), ("x", "y", "tie")]), rounds=50)
    keys = {"model", "rating", "ci_low", "ci_high", "wins", "losses", "ties", "votes", "win_rate",
            "win_rate_low", "win_rate_high", "elo", "rank"}
    assert all(keys <= set(r) for r in rows) and len(rows) == 2
    assert ratings.leaderboard(_votes([]), rounds=10) == []
    with pytest.raises(ValueError, match="winner must be one of"):
        ratings.leaderboard(_votes([("x", "y", "left")]))


def test_leaderboard_is_fast_on_100k_votes():
    import time

    true = {f"m{i}": 900 + 30 * i for i in range(10)}
    df = simulate(true, 100_000, seed=11, tie_rate=0.1)
    start = time.perf_counter()
    rows = ratings.leaderboard(df, rounds=1000)
    elapsed = time.perf_counter() - start
    assert len(rows) == 10 and rows[0]["model"] == "m9"
    assert elapsed < 6  # goal < 2 s on an idle box; generous here for a shared CPU
