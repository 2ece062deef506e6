"""Ratings against referees worked out by hand or by a plain second computation: the cases that
mutation testing showed untested (`tools/mutation.py ftassist/arena/ratings.py`).

Two models have a closed-form Bradley-Terry fit: the fitted chance that x beats y is x's score
share s (ties as half), so the gap is log10(s / (1 - s)) (x400 on the Elo scale), split evenly.

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- as_battles 7: `pd.Series(dtype=None)` is an object Series, as `dtype=object` is.
- model_records 23, 29, 35 and preprocess_for_bt 64, bootstrap_bt 19: `astype(None)` gives
  float64, which sums and converts to int the same; 97, 99-101: the `n == 0` branch is
  unreachable (every model in the records has a vote).
- headline 79: `float("NAN")` is `float("nan")`.
- bootstrap_bt 8: with `rounds < 0`, zero rounds go on to draw and fit nothing, which gives the
  same empty frame.
- guess_finetuned 26, 28, 31: a config without "model" reads as "None" or "XXXX" instead of "",
  none of which starts with "ft:".
- summary 58, 61: with exactly two models, the headline against everyone is the headline
  against the other one.
- display_names 7, 8, guess_finetuned 7, 8 (as votes_frame below): SQL in another case.
- fit_bt 6, 8: the weights become floats at the division anyway; 27: `=` instead of `+=` on a
  zero matrix where each cell is written once; 52: scipy reads the method name in any case;
  70, 71, 73: the ratings are already centred (every gradient sums to zero over the models, so
  L-BFGS never leaves the zero-mean plane from a zero start), so centring again is a no-op;
  18: a minimum of 1 + 1e-12 instead of 1e-12 only rescales rows whose weights sum below 1
  (never a bootstrap row: those sum to the number of votes), which moves no optimum;
  2, 58, 61: iteration caps (101 instead of 100, x2 for one fit, x6 for a batch) that only show
  in a fit stopped before it converges (the maxiter test tells 1 step from 5, not 1 from 2).
- leaderboard 7, 10, 12, 15, 17, 21, 26: `cells` is a cache of `preprocess_for_bt(df)`; without
  it (or without `df` when it is given) the same cells are computed again.
- votes_frame 7, 8, 11, 12: SQL keywords and identifiers are case-insensitive.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ftassist.arena import ratings
from ftassist.store import get_store

Z95 = 1.959963984540054  # the 97.5% point of the normal distribution


def votes(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["model_a", "model_b", "winner"])


def closed_form(x_score: float, n: float) -> tuple[float, float]:
    """x's and y's Elo-scale ratings of the two-model fit, by hand."""
    gap = 400 * math.log10(x_score / (n - x_score))
    return 1000 + gap / 2, 1000 - gap / 2


def wilson_by_hand(successes: float, n: float) -> tuple[float, float]:
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# x wins 4 of 5, on both sides: 3 as model_a, 1 as model_b; y wins once as model_a
FOUR_TO_ONE = votes(("x", "y", "model_a"), ("x", "y", "model_a"), ("y", "x", "model_b"),
                    ("x", "y", "model_a"), ("y", "x", "model_a"))


# -- input -------------------------------------------------------------------------------------------
def test_a_list_of_dicts_is_read_like_a_frame():
    rows = [{"model_a": "x", "model_b": "y", "winner": "model_b"}, {"model_a": "y", "model_b": "x", "winner": "tie"}]
    df = ratings.as_battles(rows)
    assert df.to_dict("records") == rows
    assert ratings.headline(rows, "y")["wins"] == 1


def test_no_votes_give_an_empty_frame_with_the_three_columns():
    for empty in ([], pd.DataFrame()):
        df = ratings.as_battles(empty)
        assert list(df.columns) == ["model_a", "model_b", "winner"] and len(df) == 0
        assert ratings.headline(df, "x")["votes"] == 0


def test_missing_columns_and_unknown_winners_are_named_in_the_error():
    with pytest.raises(ValueError) as missing:
        ratings.as_battles(pd.DataFrame({"model_a": ["x"], "model_b": ["y"]}))
    assert str(missing.value) == "votes need columns model_a, model_b, winner (missing: winner)"
    with pytest.raises(ValueError) as two:
        ratings.as_battles([{"model_a": "x", "result": "A"}])
    assert str(two.value) == "votes need columns model_a, model_b, winner (missing: model_b, winner)"
    with pytest.raises(ValueError) as unknown:
        ratings.as_battles(votes(("x", "y", "model_a"), ("x", "y", "left")))
    assert str(unknown.value) == "winner must be one of model_a, model_b, tie, tie (bothbad); got 'left'"


def test_the_frame_is_renumbered_and_keeps_only_its_columns():
    df = votes(("x", "y", "model_a"), ("y", "z", "tie"), ("z", "x", "model_b")).iloc[[2, 0]]
    clean = ratings.as_battles(df)
    assert list(clean.index) == [0, 1] and list(clean.columns) == ["model_a", "model_b", "winner"]
    assert clean["model_a"].tolist() == ["z", "x"]


# -- win rates -------------------------------------------------------------------------------------
def test_wilson_for_one_vote_and_the_upper_bound_never_passes_one():
    low, high = ratings.wilson_interval(1, 1)
    assert low == pytest.approx(1 / (1 + Z95**2), abs=1e-12) and high == 1.0  # p = 1: centre + half = 1
    ci = stats.binomtest(1, 1).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert ratings.wilson_interval(0.5, 1) == pytest.approx(wilson_by_hand(0.5, 1), abs=1e-12)
    for n in range(1, 40):  # 16/16 reaches 1 + 2e-16 before the clip
        assert ratings.wilson_interval(n, n)[1] <= 1.0
        assert ratings.wilson_interval(0, n)[0] >= 0.0


def test_headline_counts_wins_on_either_side_and_ties_as_half():
    df = votes(("x", "y", "model_a"), ("y", "x", "model_b"), ("y", "x", "model_b"), ("y", "x", "model_a"),
               ("x", "y", "tie"), ("y", "x", "tie (bothbad)"), ("x", "y", "tie"),
               ("y", "z", "model_a"), ("z", "y", "tie"), ("x", "z", "model_b"))
    head = ratings.headline(df, "x", "y")
    assert head["model"] == "x" and head["opponent"] == "y"
    # x won 1 as A and 2 as B, lost 1, tied 3: score 3 + 1.5 of 7
    assert (head["wins"], head["losses"], head["ties"], head["votes"]) == (3, 1, 3, 7)
    assert head["win_rate"] == pytest.approx(4.5 / 7)
    assert (head["win_rate_low"], head["win_rate_high"]) == pytest.approx(wilson_by_hand(4.5, 7), abs=1e-12)
    # y's own figure against x only leaves y's votes with z out
    y_head = ratings.headline(df, "y", "x")
    assert (y_head["wins"], y_head["losses"], y_head["ties"], y_head["votes"]) == (1, 3, 3, 7)
    # against everyone: x also lost to z
    overall = ratings.headline(df, "x")
    assert overall["opponent"] is None
    assert (overall["wins"], overall["losses"], overall["ties"], overall["votes"]) == (3, 2, 3, 8)


def test_headline_without_votes_is_nan_not_an_error():
    head = ratings.headline(FOUR_TO_ONE, "x", "nobody")
    assert head["votes"] == 0 and math.isnan(head["win_rate"])
    assert (head["win_rate_low"], head["win_rate_high"]) == (0.0, 1.0)


def test_pairwise_rates_cover_models_seen_on_one_side_only():
    df = votes(("x", "y", "model_a"), ("x", "z", "model_b"))  # x only ever model_a, y and z only model_b
    rates, counts = ratings.pairwise_win_rate(df)
    assert list(rates.index) == ["x", "y", "z"] and list(rates.columns) == ["x", "y", "z"]
    assert rates.loc["x", "y"] == 1.0 and rates.loc["y", "x"] == 0.0  # one vote is a rate, not a gap
    assert rates.loc["z", "x"] == 1.0 and counts.loc["x", "z"] == 1
    assert all(dtype == np.float64 for dtype in rates.dtypes)
    assert math.isnan(rates.loc["y", "z"]) and math.isnan(rates.loc["x", "x"])


# -- online Elo ---------------------------------------------------------------------------------
def test_elo_scores_a_model_b_win_as_zero_for_model_a():
    elo = ratings.compute_elo(votes(("x", "y", "model_b"), ("x", "y", "model_b")))
    x, y = 1000.0, 1000.0
    for _ in range(2):  # y wins as model_b: x scores 0, y scores 1
        expected_x = 1 / (1 + 10 ** ((y - x) / 400))
        x, y = x + 4 * (0 - expected_x), y + 4 * (1 - (1 - expected_x))
    assert elo["x"] == pytest.approx(x, abs=1e-9) and elo["y"] == pytest.approx(y, abs=1e-9)
    assert elo["y"] > 1000 > elo["x"]


# -- Bradley-Terry ----------------------------------------------------------------------------------
def test_ratings_come_highest_first_and_as_floats():
    bt = ratings.compute_bt(votes(("a", "b", "model_b"), ("b", "c", "model_b"), ("c", "a", "model_a"),
                                  ("c", "b", "model_a"), ("a", "b", "tie")))
    assert list(bt.index) == ["c", "b", "a"]
    assert list(bt.values) == sorted(bt.values, reverse=True)
    assert ratings.compute_bt(votes()).dtype == np.float64


def test_a_loose_tolerance_stops_at_the_start_and_a_tight_one_reaches_the_closed_form():
    matchups, outcomes, models, weights = ratings.preprocess_for_bt(FOUR_TO_ONE)
    x_expected = math.log10(4) / 2  # natural units: the gap log10(4 / 1), split evenly
    fitted = dict(zip(models, ratings.fit_bt(matchups, outcomes, weights, len(models))))
    assert fitted["x"] == pytest.approx(x_expected, abs=1e-5) and fitted["y"] == pytest.approx(-x_expected, abs=1e-5)
    # the gradient at the start (all zero) is below 1: a tolerance of 1 takes no step
    assert ratings.fit_bt(matchups, outcomes, weights, len(models), tol=1.0).tolist() == [0.0, 0.0]


def test_the_iteration_cap_is_honoured_and_a_batch_of_rounds_gets_five_times_as_many():
    df = votes(*[("x", "y", "model_a")] * 4, ("y", "x", "model_a"), *[("x", "z", "model_b")] * 3,
               *[("z", "y", "tie")] * 2)
    matchups, outcomes, models, weights = ratings.preprocess_for_bt(df)
    converged = ratings.fit_bt(matchups, outcomes, weights, 3, tol=1e-12, maxiter=1000)
    one_step = ratings.fit_bt(matchups, outcomes, weights, 3, maxiter=1)
    assert np.abs(one_step - converged).max() > 0.1  # one L-BFGS step is far from the optimum
    batch = ratings.fit_bt(matchups, outcomes, np.stack([weights, weights]), 3, maxiter=1)
    assert batch.shape == (2, 3)
    assert np.abs(batch - converged).max() < 1e-3  # five steps are close to it


def test_a_round_without_votes_rates_everyone_equal():
    matchups, outcomes, models, weights = ratings.preprocess_for_bt(FOUR_TO_ONE)
    both = ratings.fit_bt(matchups, outcomes, np.stack([np.zeros_like(weights), weights]), 2)
    assert both[0].tolist() == [0.0, 0.0]
    assert both[1][0] == pytest.approx(math.log10(4) / 2, abs=1e-4)


def bootstrap_by_hand(df: pd.DataFrame, rounds: int, seed: int) -> np.ndarray:
    """x's rating in each bootstrap round of a two-model frame: the same multinomial draws over
    the (a, b, outcome) cells, each round solved in closed form from x's score share."""
    matchups, outcomes, models, weights = ratings.preprocess_for_bt(df)
    draws = np.random.default_rng(seed).multinomial(int(weights.sum()), weights / weights.sum(), size=rounds)
    x = models.index("x")
    x_outcome = np.where(matchups[:, 0] == x, outcomes, 1 - outcomes)  # x's score in each cell
    share = (draws * x_outcome).sum(axis=1) / draws.sum(axis=1)
    return 1000 + 200 * np.log10(share / (1 - share))


# 60 votes on both sides with ties: no bootstrap round is ever all wins for one model
SIXTY = votes(*[("x", "y", "model_a")] * 30, *[("y", "x", "model_a")] * 12, *[("x", "y", "model_b")] * 8,
              *[("y", "x", "tie")] * 10)


def test_bootstrap_rounds_match_the_closed_form_round_by_round():
    df = SIXTY
    boot = ratings.bootstrap_bt(df, rounds=400, seed=9)
    assert boot.shape == (400, 2)
    assert boot["x"].to_numpy() == pytest.approx(bootstrap_by_hand(df, 400, 9), abs=0.01)
    assert (boot["x"] + boot["y"]).to_numpy() == pytest.approx(2000, abs=1e-6)


def test_bootstrap_defaults_and_edges():
    df = SIXTY
    boot = ratings.bootstrap_bt(df)
    assert len(boot) == 1000  # FastChat's number of rounds
    assert boot["x"].to_numpy() == pytest.approx(bootstrap_by_hand(df, 1000, 0), abs=0.05)  # seed 0
    one = ratings.bootstrap_bt(df, rounds=1, seed=4)
    assert one.shape == (1, 2) and one["x"].iloc[0] == pytest.approx(bootstrap_by_hand(df, 1, 4)[0], abs=0.05)
    for rounds in (0, -1):
        none = ratings.bootstrap_bt(df, rounds=rounds)
        assert none.shape == (0, 2) and list(none.columns) == ["x", "y"]
        assert all(dtype == np.float64 for dtype in none.dtypes)
    anchored = ratings.bootstrap_bt(df, rounds=30, seed=2, anchor=("y", 1200.0))
    assert anchored["y"].to_numpy() == pytest.approx(1200.0, abs=1e-9)
    assert anchored["x"].to_numpy() == pytest.approx(2 * bootstrap_by_hand(df, 30, 2) - 2000 + 1200, abs=0.05)  # y + the gap


def test_rank_counts_only_models_whose_low_bound_is_strictly_above():
    # b's low bound touches a's high bound: not surely better
    assert ratings.rank_models({"a": 990.0, "b": 1010.0}, {"a": 1010.0, "b": 1030.0}) == {"a": 1, "b": 1}
    assert ratings.rank_models({"a": 990.0, "b": 1010.5}, {"a": 1010.0, "b": 1030.0}) == {"a": 2, "b": 1}


# -- the table -------------------------------------------------------------------------------------
def test_leaderboard_rows_are_rounded_as_documented():
    rows = {r["model_id"]: r for r in ratings.leaderboard(FOUR_TO_ONE, rounds=0, names={"x": "Tuned"})}
    x_expected, y_expected = closed_form(4, 5)  # 1120.41200, 879.58800
    assert rows["x"]["model"] == "Tuned" and rows["y"]["model"] == "y"
    assert rows["x"]["rating"] == rows["x"]["ci_low"] == rows["x"]["ci_high"] == round(x_expected, 2) == 1120.41
    assert rows["y"]["rating"] == round(y_expected, 2) == 879.59
    # y: 1 win of 5
    assert rows["y"]["win_rate"] == 0.2
    low, high = wilson_by_hand(1, 5)
    assert (rows["y"]["win_rate_low"], rows["y"]["win_rate_high"]) == (round(low, 4), round(high, 4))
    # online Elo, vote by vote
    elo = {"x": 1000.0, "y": 1000.0}
    for a, b, winner in FOUR_TO_ONE.itertuples(index=False):
        score_a = {"model_a": 1.0, "model_b": 0.0}[winner]
        expected_a = 1 / (1 + 10 ** ((elo[b] - elo[a]) / 400))
        elo[a], elo[b] = elo[a] + 4 * (score_a - expected_a), elo[b] + 4 * (expected_a - score_a)
    assert rows["x"]["elo"] == round(elo["x"], 2) and rows["y"]["elo"] == round(elo["y"], 2)
    assert rows["x"]["elo"] != round(elo["x"], 3)  # the fixture really has more than two decimals


def test_leaderboard_win_rate_keeps_four_decimals():
    rows = {r["model_id"]: r for r in ratings.leaderboard(votes(("x", "y", "model_a"), ("y", "x", "model_a"),
                                                                ("y", "x", "model_a")), rounds=0)}
    assert rows["x"]["win_rate"] == 0.3333 and rows["y"]["win_rate"] == 0.6667


def test_leaderboard_passes_rounds_seed_and_anchor_to_the_bootstrap():
    df = SIXTY
    for rounds, seed in ((7, 3), (1, 5), (1000, 0)):
        x_rounds = bootstrap_by_hand(df, rounds, seed)
        (x,) = [r for r in ratings.leaderboard(df, rounds=rounds, seed=seed) if r["model_id"] == "x"]
        assert x["ci_low"] == pytest.approx(np.quantile(x_rounds, 0.025), abs=0.06)
        assert x["ci_high"] == pytest.approx(np.quantile(x_rounds, 0.975), abs=0.06)
    anchored = {r["model_id"]: r for r in ratings.leaderboard(df, rounds=50, seed=1, anchor=("y", 1500.0))}
    x_expected, y_expected = closed_form(30 + 10 / 2, 60)  # x: 30 wins as A, 10 ties
    assert anchored["y"]["rating"] == anchored["y"]["ci_low"] == anchored["y"]["ci_high"] == 1500.0
    assert anchored["x"]["rating"] == pytest.approx(1500.0 + x_expected - y_expected, abs=0.01)
    x_anchored = bootstrap_by_hand(df, 50, 1) * 2 - 2000 + 1500  # x - y in each round, on y = 1500
    assert anchored["x"]["ci_high"] == pytest.approx(np.quantile(x_anchored, 0.975), abs=0.06)


# three models: every bootstrap round's fit is a different number, so the quantiles tell one
# seed, or one round more, from another
THREE = votes(*[("x", "y", "model_a")] * 13, *[("y", "x", "model_a")] * 7, *[("x", "y", "tie")] * 4,
              *[("y", "z", "model_a")] * 9, *[("z", "y", "model_a")] * 6, *[("z", "y", "tie (bothbad)")] * 3,
              *[("x", "z", "model_b")] * 5, *[("z", "x", "model_b")] * 11, *[("x", "z", "tie")] * 2)


def bounds(boot: pd.DataFrame) -> dict[str, tuple[float, float]]:
    return {m: (round(float(boot[m].quantile(0.025)), 2), round(float(boot[m].quantile(0.975)), 2)) for m in boot}


def assert_bounds_from(rows: list[dict], boot: pd.DataFrame) -> None:
    assert {r["model_id"]: (r["ci_low"], r["ci_high"]) for r in rows} == bounds(boot)


def test_leaderboard_defaults_are_1000_rounds_from_seed_0():
    expected = ratings.bootstrap_bt(THREE, rounds=1000, seed=0)
    assert_bounds_from(ratings.leaderboard(THREE), expected)
    # the check can tell the defaults apart from a seed or a round count next to them
    assert bounds(ratings.bootstrap_bt(THREE, rounds=1000, seed=1)) != bounds(expected)
    assert bounds(ratings.bootstrap_bt(THREE, rounds=1001, seed=0)) != bounds(expected)


def test_leaderboard_with_rounds_zero_uses_the_fit_as_both_bounds():
    rows = ratings.leaderboard(FOUR_TO_ONE, rounds=0)
    assert all(r["ci_low"] == r["rating"] == r["ci_high"] for r in rows)
    assert [r["rank"] for r in rows] == [1, 2]


def test_models_of_the_same_rank_are_listed_by_rating():
    df = votes(("x", "y", "model_b"), ("x", "y", "model_b"), ("x", "y", "model_a"))  # y ahead, few votes
    rows = ratings.leaderboard(df, rounds=50, seed=0)
    assert [r["rank"] for r in rows] == [1, 1]  # the intervals overlap
    assert [r["model_id"] for r in rows] == ["y", "x"]


# -- from the store ------------------------------------------------------------------------------
def register(store, model_id, name, kind="openai_compatible", config=None, created="2026-11-01 10:00:00"):
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json, created_at) VALUES (?, ?, ?, ?, ?)",
                  [model_id, kind, name, json.dumps(config or {}), created])


def store_votes(store, rows, battle_id=None):
    for i, (a, b, winner) in enumerate(rows):
        store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, ts)"
                      " VALUES (?, ?, ?, ?, ?, ?, TIMESTAMP '2026-11-02 10:00:00' + to_seconds(?))",
                      [f"v{i}-{battle_id}", battle_id or f"imported-{i}", f"voter{i}", a, b, winner, i])


def test_display_names_mark_removed_models_and_ids_without_a_name_stay_ids():
    store = get_store()
    register(store, "base", "Base model")
    register(store, "old", "Old tune")
    store.execute("UPDATE arena_models SET removed_at = current_timestamp WHERE id = 'old'")
    assert ratings.display_names(store) == {"base": "Base model", "old": "Old tune (removed)"}


@pytest.mark.parametrize(("kind", "config"), [
    ("hf_adapter", {"adapter": "/runs/r1/adapter"}),
    ("openai_compatible", {"model": "ft:gpt-4o-mini:org::abc123"}),
    ("hf_local", {"run_dir": "/runs/r2"}),
])
def test_the_fine_tuned_model_is_found_whichever_was_registered_first(kind, config):
    store = get_store()
    register(store, "tuned", "Tuned", kind=kind, config=config, created="2026-11-01 09:00:00")
    register(store, "plain", "Plain", config={"model": "gpt-4o-mini"}, created="2026-11-01 10:00:00")
    assert ratings.guess_finetuned(store, ["plain", "tuned"]) == "tuned"
    assert ratings.guess_finetuned(store, ["plain"]) == "plain"  # the only one asked about


def test_without_a_tuned_sign_the_last_registered_is_taken_and_none_when_unknown():
    store = get_store()
    register(store, "zeta", "Zeta", config={"model": "m-1"}, created="2026-11-01 09:00:00")
    register(store, "alpha", "Alpha", config={"model": "m-2"}, created="2026-11-01 11:00:00")
    register(store, "beta", "Beta", kind="hf_local", created="2026-11-01 11:00:00")
    store.execute("UPDATE arena_models SET config_json = '' WHERE id = 'beta'")  # an empty config reads as {}
    assert ratings.guess_finetuned(store, ["zeta", "alpha"]) == "alpha"  # registered later
    assert ratings.guess_finetuned(store, ["alpha", "beta"]) == "beta"  # same time: the later id
    assert ratings.guess_finetuned(store, ["zeta", "nobody"]) == "zeta"
    assert ratings.guess_finetuned(store, ["nobody", "else"]) is None


def test_summary_of_two_models_names_the_tuned_one_in_the_headline():
    store = get_store()
    register(store, "gpt-tuned", "My tune", config={"model": "ft:gpt-4o-mini:org::x1"}, created="2026-11-01 09:00:00")
    register(store, "gpt-base", "Base", config={"model": "gpt-4o-mini"}, created="2026-11-01 10:00:00")
    store_votes(store, [("gpt-base", "gpt-tuned", "model_b"), ("gpt-tuned", "gpt-base", "model_a"),
                        ("gpt-tuned", "gpt-base", "tie"), ("gpt-base", "gpt-tuned", "model_a")])
    result = ratings.summary(store, rounds=20, seed=1)
    assert result["votes"] == 4
    assert {r["model"] for r in result["leaderboard"]} == {"My tune", "Base"}
    head = result["headline"]
    assert (head["model"], head["opponent"]) == ("My tune", "Base")
    assert (head["wins"], head["losses"], head["ties"], head["votes"]) == (2, 1, 1, 4)
    assert head["win_rate"] == pytest.approx(2.5 / 4)
    assert result["pairwise"].loc["My tune", "Base"] == pytest.approx(2.5 / 4)
    assert result["pairwise_counts"].loc["Base", "My tune"] == 4
    assert sorted(result["pairwise"].index) == ["Base", "My tune"]
    # the table is the leaderboard of the stored votes, with the rounds and seed asked for
    table = ratings.leaderboard(ratings.votes_frame(store), rounds=20, seed=1, names=ratings.display_names(store))
    assert result["leaderboard"] == table
    assert table != ratings.leaderboard(ratings.votes_frame(store), rounds=20, seed=2, names=ratings.display_names(store))


def test_summary_headline_is_for_the_tuned_model_when_its_id_sorts_first():
    store = get_store()
    register(store, "a-tuned", "Tuned", kind="hf_adapter", created="2026-11-01 09:00:00")
    register(store, "b-base", "Base", kind="hf_local", created="2026-11-01 10:00:00")
    store_votes(store, [("a-tuned", "b-base", "model_a"), ("b-base", "a-tuned", "model_a"), ("a-tuned", "b-base", "model_a")])
    head = ratings.summary(store, rounds=5)["headline"]
    assert (head["model"], head["opponent"], head["wins"], head["losses"], head["votes"]) == ("Tuned", "Base", 2, 1, 3)


def test_summary_defaults_to_1000_rounds_from_seed_0():
    store = get_store()
    store_votes(store, [tuple(row) for row in THREE.itertuples(index=False)])
    frame = ratings.votes_frame(store)  # the order of first appearance decides the cells' order
    assert_bounds_from(ratings.summary(store)["leaderboard"], ratings.bootstrap_bt(frame, rounds=1000, seed=0))


def test_summary_headline_falls_back_to_the_second_id_and_needs_exactly_two_models():
    store = get_store()
    store_votes(store, [("m-one", "m-two", "model_a"), ("m-two", "m-one", "tie")])  # imported, not registered
    head = ratings.summary(store, rounds=5)["headline"]
    assert (head["model"], head["opponent"], head["wins"], head["ties"]) == ("m-two", "m-one", 0, 1)
    store_votes(store, [("m-one", "m-three", "model_a")], battle_id="b3")
    result = ratings.summary(store, rounds=5)
    assert result["headline"] is None and result["votes"] == 3 and len(result["leaderboard"]) == 3


def test_votes_frame_leaves_out_flagged_battles_unless_asked():
    store = get_store()
    for battle_id, reason in (("clean", None), ("leaky", "an answer mentions 'OpenAI'")):
        store.execute("INSERT INTO battles (id, prompt, model_a, model_b, answer_a, answer_b, flagged_reason)"
                      " VALUES (?, 'p', 'x', 'y', 'one', 'two', ?)", [battle_id, reason])
    store_votes(store, [("x", "y", "model_a")], battle_id="clean")
    store_votes(store, [("x", "y", "model_b")], battle_id="leaky")
    store_votes(store, [("y", "x", "tie")])  # imported: no battle row, always counted
    assert sorted(ratings.votes_frame(store)["winner"]) == ["model_a", "tie"]
    assert sorted(ratings.votes_frame(store, include_flagged=True)["winner"]) == ["model_a", "model_b", "tie"]
    assert sorted(ratings.votes_frame(store, include_flagged=False)["winner"]) == ["model_a", "tie"]
