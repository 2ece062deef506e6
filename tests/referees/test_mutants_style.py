"""Style-controlled ratings against referees worked out by hand or by a plain second computation: the
cases that mutation testing showed untested (`tools/mutation.py ftassist/arena/style.py`).

The referees:
- style counts and features: the counts read off each answer by eye, the normalised differences
  (a - b) / (a + b + 1) and their standardisation (population standard deviation) done in plain Python;
- a fit: the first-order conditions of the documented objective, written out per vote here:
  sum_i w_i (y_i - p_i) dz_i/dtheta = reg * beta (zero for the ratings), with
  p_i = 1 / (1 + exp(-(ln10 (r_a - r_b) + beta . x_i))), y_i = 1 | 0 | 0.5; the ratings centred on zero;
  two models and no feature have the closed form gap log10(s / (1 - s)), split evenly;
- the bootstrap intervals: the large-sample standard errors from the inverse of the Hessian of the
  same objective (the Fisher information), computed here: a 95% interval is about +-1.96 of them.

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- fit_style_bt 2: a default cap of 201 iterations instead of 200; the fits converge long before either.
- fit_style_bt 6, 8 and style_features 8, 10, 13, 15: without `dtype=float64` the counts are integers,
  which become floats at the first division all the same.
- fit_style_bt 17: a floor of 1 + 1e-12 instead of 1e-12 on a round's vote count only changes a round
  without votes (every other round counts at least one vote), whose fit stays at zero either way.
- fit_style_bt 23: `=` instead of `+=` on a zero matrix where each cell is written once.
- fit_style_bt 52: scipy reads the method's name in any case.
- fit_style_bt 73, 74, 76: the ratings are already centred (every gradient sums to zero over the
  models, so L-BFGS never leaves the zero-mean plane from a zero start): centring again is a no-op.
- style_control 60: the plain fit has no style coefficient for the penalty to act on.
- style_control 95, 101: the chunk of bootstrap rounds fitted at once only bounds memory; the draws
  (one Poisson stream, row after row) and the fits are the same in any chunks.
- style_control 117, 120: `astype(None)` is float64; Poisson's default mean is 1.0.
- style_features 26: `<=` instead of `<` against 1e-9: no spread of normalised differences is 1e-9.
- with_answers 6: `<` instead of `<=`: a votes frame always has columns besides the two answers;
  8: `iloc[1:0]` is as empty as `iloc[0:0]`.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from ftassist.arena import style

LN10 = math.log(10.0)


# --------------------------------------------------------------------------- style counts


@pytest.mark.parametrize("text, counts", [
    ("", (0, 0, 0, 0)),
    ("  one\ttwo\nthree  ", (3, 0, 0, 0)),
    ("# A\n## B\n###### C\n####### D\n#E\n    # F\n   # G", (13, 4, 0, 0)),
    ("- a\n* b\n+ c\n1. d\n2) e\n-f\n1.g\n   - h", (14, 0, 6, 0)),
    ("**a** __b__ **c d** ** ** **\n** __x", (9, 0, 0, 4)),
    ("no ** bold here", (4, 0, 0, 0)),
])
def test_style_counts_read_by_eye(text, counts):
    assert style.answer_style(text) == dict(zip(("length", "headers", "lists", "bold"), counts))


def test_no_answer_counts_nothing():
    assert style.answer_style(None) == {"length": 0, "headers": 0, "lists": 0, "bold": 0}


def test_the_features_and_constants_are_fastchats():
    assert style.FEATURES == ("length", "headers", "lists", "bold")
    assert style.STYLE_REG == 0.5 and style.SCALE == 400.0 and style.INIT_RATING == 1000.0
    assert style.ALPHA == pytest.approx(LN10, rel=1e-15)


# --------------------------------------------------------------------------- features


def standardised(values: list[float]) -> list[float]:
    mean, spread = statistics.fmean(values), statistics.pstdev(values)
    return [(v - mean) / spread for v in values]


def test_features_by_hand():
    answers_a = ["one two three", "one", "**b** x", "# T\n- a\n- b"]
    answers_b = ["one", "one two", "y", "plain words"]
    # lengths a 3, 1, 2, 6 and b 1, 2, 1, 2; bold a 0, 0, 1, 0; headers a 0, 0, 0, 1; lists a 0, 0, 0, 2
    length = [(3 - 1) / 5, (1 - 2) / 4, (2 - 1) / 4, (6 - 2) / 9]
    headers = [0, 0, 0, 1 / 2]
    lists = [0, 0, 0, 2 / 3]
    bold = [0, 0, 1 / 2, 0]
    matrix, kept = style.style_features(answers_a, answers_b)
    assert kept == ["length", "headers", "lists", "bold"]
    expected = np.column_stack([standardised(length), standardised(headers), standardised(lists),
                                standardised(bold)])
    assert matrix == pytest.approx(expected, abs=1e-12)
    only, kept = style.style_features(answers_a, answers_b, features=("bold", "length"))
    assert kept == ["bold", "length"]
    assert only == pytest.approx(np.column_stack([standardised(bold), standardised(length)]), abs=1e-12)


def test_features_that_do_not_vary_are_left_out():
    # equal lengths and no markdown: nothing varies, nothing is kept, an empty matrix of the votes' rows
    matrix, kept = style.style_features(["a b", "c d", "e f"], ["g h", "i j", "k l"])
    assert kept == [] and matrix.shape == (3, 0)
    # a difference that is the same in every vote does not vary either
    matrix, kept = style.style_features(["a b c", "d e f"], ["g", "h"])
    assert kept == [] and matrix.shape == (2, 0)
    # two votes that differ are enough
    matrix, kept = style.style_features(["a b c", "d"], ["g", "h"])
    assert kept == ["length"] and matrix[:, 0] == pytest.approx([1.0, -1.0])
    # one vote is never enough
    matrix, kept = style.style_features(["a b c"], ["g"])
    assert kept == [] and matrix.shape == (1, 0)
    # a small spread is still a spread
    long_a = " ".join(["w"] * 1000)
    matrix, kept = style.style_features([long_a, long_a + " w"], ["w", "w"])
    assert kept == ["length"] and matrix[:, 0] == pytest.approx([-1.0, 1.0])


def test_outcomes():
    outcomes = style._outcomes(np.array(["model_a", "model_b", "tie", "tie (bothbad)"]))
    assert outcomes.tolist() == [1.0, 0.0, 0.5, 0.5]


# --------------------------------------------------------------------------- the fit


def first_order(ia, ib, features, outcomes, weights, ratings, beta, reg):
    """The gradient of sum_i w_i logloss_i + reg/2 |beta|^2, vote by vote: (ratings part, beta part)."""
    grad_r = np.zeros(len(ratings))
    grad_b = reg * np.asarray(beta, dtype=float)
    for i in range(len(outcomes)):
        z = LN10 * (ratings[ia[i]] - ratings[ib[i]]) + sum(b * x for b, x in zip(beta, features[i]))
        p = 1.0 / (1.0 + math.exp(-z))
        residual = weights[i] * (p - outcomes[i])
        grad_r[ia[i]] += LN10 * residual
        grad_r[ib[i]] -= LN10 * residual
        for j in range(len(beta)):
            grad_b[j] += residual * features[i][j]
    return grad_r, grad_b


def synthetic(n: int, seed: int, n_models: int = 3):
    """Votes among `n_models` whose answers vary in length and markdown; winners drawn from a known model."""
    rng = np.random.default_rng(seed)
    strength = np.linspace(0.6, -0.6, n_models)
    rows = []
    for _ in range(n):
        a, b = rng.choice(n_models, size=2, replace=False)
        answers = []
        for _side in range(2):
            words = " ".join(["word"] * int(rng.integers(5, 120)))
            header = "# Title\n" if rng.random() < 0.3 else ""
            items = "".join(f"- item {k}\n" for k in range(int(rng.integers(0, 4))))
            bold = " **key**" * int(rng.integers(0, 3))
            answers.append(header + words + "\n" + items + bold)
        length_gap = (len(answers[0].split()) - len(answers[1].split())) / 100
        logit = LN10 * (strength[a] - strength[b]) + 1.5 * length_gap
        draw = rng.random()
        p = 1 / (1 + math.exp(-logit))
        winner = "tie" if abs(draw - p) < 0.05 else ("model_a" if draw < p else "model_b")
        rows.append({"model_a": f"m{a}", "model_b": f"m{b}", "winner": winner,
                     "answer_a": answers[0], "answer_b": answers[1]})
    return pd.DataFrame(rows)


def arrays(df: pd.DataFrame):
    names = sorted(set(df["model_a"]) | set(df["model_b"]))
    ia = np.array([names.index(m) for m in df["model_a"]])
    ib = np.array([names.index(m) for m in df["model_b"]])
    outcomes = np.array([{"model_a": 1.0, "model_b": 0.0}.get(w, 0.5) for w in df["winner"]])
    return names, ia, ib, outcomes


@pytest.mark.parametrize("reg", [style.STYLE_REG, 20.0])
def test_the_fit_meets_its_first_order_conditions(reg):
    df = synthetic(300, seed=4)
    names, ia, ib, outcomes = arrays(df)
    features, kept = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist())
    assert kept == ["length", "headers", "lists", "bold"]
    weights = np.ones(len(df))
    ratings, beta = style.fit_style_bt(ia, ib, features, outcomes, weights, len(names), reg=reg)
    assert ratings.shape == (3,) and beta.shape == (4,)
    assert ratings.sum() == pytest.approx(0.0, abs=1e-9)  # centred
    grad_r, grad_b = first_order(ia, ib, features, outcomes, weights, ratings, beta, reg)
    assert np.abs(grad_r).max() < 2e-2 and np.abs(grad_b).max() < 2e-2
    assert ratings[0] > ratings[1] > ratings[2] and beta[0] > 0.3  # the model the votes were drawn from


def test_two_models_without_features_have_the_closed_form():
    # x wins 6, loses 1, ties 1 of 8: s = 6.5 / 8
    outcomes = np.array([1, 1, 1, 1, 1, 1, 0, 0.5])
    ia, ib = np.zeros(8, dtype=int), np.ones(8, dtype=int)
    ratings, beta = style.fit_style_bt(ia, ib, np.zeros((8, 0)), outcomes, np.ones(8), 2)
    gap = math.log10(6.5 / 1.5)
    assert ratings == pytest.approx([gap / 2, -gap / 2], abs=1e-5) and beta.shape == (0,)
    # counts are weights: the same votes counted twice give the same fit, a vote counted 0 times is not there
    twice, _ = style.fit_style_bt(ia, ib, np.zeros((8, 0)), outcomes, np.full(8, 2.0), 2)
    assert twice == pytest.approx(ratings, abs=1e-5)
    weights = np.array([1, 1, 1, 1, 1, 1, 1, 0.0])  # the tie left out: s = 6 / 7
    without_tie, _ = style.fit_style_bt(ia, ib, np.zeros((8, 0)), outcomes, weights, 2)
    gap = math.log10(6 / 1)
    assert without_tie == pytest.approx([gap / 2, -gap / 2], abs=1e-5)


def test_rows_of_weights_are_fitted_each_on_its_own():
    df = synthetic(200, seed=7)
    names, ia, ib, outcomes = arrays(df)
    features, _ = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist())
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(3, len(df))).astype(float)
    ratings, beta = style.fit_style_bt(ia, ib, features, outcomes, counts, len(names))
    assert ratings.shape == (3, 3) and beta.shape == (3, 4)
    for row in range(3):
        assert ratings[row].sum() == pytest.approx(0.0, abs=1e-9)
        # each row's penalty is reg on its own summed loss
        grad_r, grad_b = first_order(ia, ib, features, outcomes, counts[row], ratings[row], beta[row],
                                     style.STYLE_REG)
        assert np.abs(grad_r).max() < 2e-2 and np.abs(grad_b).max() < 2e-2, row
        alone, alone_beta = style.fit_style_bt(ia, ib, features, outcomes, counts[row], len(names))
        assert ratings[row] == pytest.approx(alone, abs=1e-3) and beta[row] == pytest.approx(alone_beta, abs=1e-3)


def test_a_round_without_votes_stays_at_zero_and_leaves_the_others_alone():
    """A Poisson round draws no vote at all with chance e^-n: likely with a few votes."""
    df = synthetic(30, seed=6)
    names, ia, ib, outcomes = arrays(df)
    features, _ = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist())
    weights = np.vstack([np.ones(len(df)), np.zeros(len(df))])
    ratings, beta = style.fit_style_bt(ia, ib, features, outcomes, weights, len(names))
    assert np.isfinite(ratings).all() and np.isfinite(beta).all()
    assert ratings[1] == pytest.approx([0, 0, 0]) and beta[1] == pytest.approx([0, 0, 0, 0])
    alone, alone_beta = style.fit_style_bt(ia, ib, features, outcomes, np.ones(len(df)), len(names))
    assert np.abs(alone).max() > 0.05
    assert ratings[0] == pytest.approx(alone, abs=1e-3) and beta[0] == pytest.approx(alone_beta, abs=1e-3)


def test_the_loss_is_the_mean_logistic_loss_of_each_round_plus_its_penalty():
    """`_loss_and_grad` against the objective written out vote by vote, for two rounds at once."""
    rng = np.random.default_rng(1)
    n_votes, n_models, n_features = 6, 3, 2
    ia, ib = np.array([0, 1, 2, 0, 1, 2]), np.array([1, 2, 0, 2, 0, 1])
    features = rng.normal(size=(n_votes, n_features))
    outcomes = np.array([1.0, 0.0, 0.5, 1.0, 1.0, 0.0])
    counts = np.array([[1.0, 2.0, 0.0, 1.0, 3.0, 1.0], [2.0, 1.0, 1.0, 1.0, 0.0, 1.0]])
    reg = np.array([0.5 / 8, 0.5 / 6])  # the penalty of each round over its number of votes
    params = rng.normal(size=(2, n_models + n_features))
    design = np.zeros((n_votes, n_models + n_features))
    design[np.arange(n_votes), ia] += LN10
    design[np.arange(n_votes), ib] -= LN10
    design[:, n_models:] = features
    weights = counts / counts.sum(axis=1, keepdims=True)
    loss, grad = style._loss_and_grad(params.ravel(), design, outcomes, weights, n_models, reg)
    expected_loss, expected_grad = 0.0, np.zeros_like(params)
    for row in range(2):
        ratings, beta = params[row, :n_models], params[row, n_models:]
        for i in range(n_votes):
            z = LN10 * (ratings[ia[i]] - ratings[ib[i]]) + beta @ features[i]
            p = 1 / (1 + math.exp(-z))
            y = outcomes[i]
            expected_loss -= weights[row, i] * (y * math.log(p) + (1 - y) * math.log(1 - p))
            expected_grad[row] += weights[row, i] * (p - y) * design[i]
        expected_loss += reg[row] / 2 * beta @ beta
        expected_grad[row, n_models:] += reg[row] * beta
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert grad == pytest.approx(expected_grad.ravel(), rel=1e-10, abs=1e-12)


def lbfgs_by_hand(ia, ib, features, outcomes, weights, n_models, reg, maxiter, gtol):
    """scipy's L-BFGS-B from zero on the objective written here: each round's mean logistic loss plus
    reg / (its number of votes) / 2 |beta|^2, all rounds as one problem; ratings centred afterwards."""
    from scipy import optimize

    weights = np.atleast_2d(weights)
    rounds, n_params = weights.shape[0], n_models + features.shape[1]
    design = np.zeros((len(outcomes), n_params))
    design[np.arange(len(outcomes)), ia] += LN10
    design[np.arange(len(outcomes)), ib] -= LN10
    design[:, n_models:] = features
    shares = weights / weights.sum(axis=1, keepdims=True)
    penalty = reg / weights.sum(axis=1)

    def objective(flat):
        params = flat.reshape(rounds, n_params)
        z = params @ design.T
        p = 1 / (1 + np.exp(-z))
        loss = -(shares * (outcomes * np.log(p) + (1 - outcomes) * np.log(1 - p))).sum()
        grad = (shares * (p - outcomes)) @ design
        beta = params[:, n_models:]
        loss += (penalty / 2 * (beta * beta).sum(axis=1)).sum()
        grad[:, n_models:] += penalty[:, None] * beta
        return loss, grad.ravel()

    result = optimize.minimize(objective, np.zeros(rounds * n_params), jac=True, method="L-BFGS-B",
                               options={"maxiter": maxiter, "gtol": gtol})
    params = result.x.reshape(rounds, n_params)
    ratings = params[:, :n_models] - params[:, :n_models].mean(axis=1, keepdims=True)
    return ratings, params[:, n_models:]


def test_the_fit_stops_where_lbfgs_stops_with_its_caps():
    """maxiter caps one fit at `maxiter` iterations and a batch of rounds at five times that; `tol` is the
    gradient tolerance: an unconverged fit is the same unconverged point scipy reaches on the objective."""
    df = synthetic(80, seed=3)
    names, ia, ib, outcomes = arrays(df)
    features, _ = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist())
    ones = np.ones(len(df))
    for maxiter in (1, 2):
        ratings, beta = style.fit_style_bt(ia, ib, features, outcomes, ones, 3, maxiter=maxiter)
        by_hand, beta_by_hand = lbfgs_by_hand(ia, ib, features, outcomes, ones, 3, style.STYLE_REG, maxiter, 1e-6)
        assert ratings == pytest.approx(by_hand[0], abs=1e-9) and beta == pytest.approx(beta_by_hand[0], abs=1e-9)
    one_step, _ = style.fit_style_bt(ia, ib, features, outcomes, ones, 3, maxiter=1)
    converged, _ = style.fit_style_bt(ia, ib, features, outcomes, ones, 3)
    assert np.abs(one_step - converged).max() > 1e-3  # one step is not the answer: the cap shows
    counts = np.random.default_rng(4).poisson(1.0, size=(2, len(df))).astype(float)
    ratings, beta = style.fit_style_bt(ia, ib, features, outcomes, counts, 3, maxiter=1)
    by_hand, beta_by_hand = lbfgs_by_hand(ia, ib, features, outcomes, counts, 3, style.STYLE_REG, 5, 1e-6)
    assert ratings == pytest.approx(by_hand, abs=1e-9) and beta == pytest.approx(beta_by_hand, abs=1e-9)
    loose, loose_beta = style.fit_style_bt(ia, ib, features, outcomes, ones, 3, tol=0.05)
    by_hand, beta_by_hand = lbfgs_by_hand(ia, ib, features, outcomes, ones, 3, style.STYLE_REG, 200, 0.05)
    assert loose == pytest.approx(by_hand[0], abs=1e-9) and loose_beta == pytest.approx(beta_by_hand[0], abs=1e-9)
    assert np.abs(loose - converged).max() > 1e-4  # a loose tolerance stops early: the tolerance shows


def test_coefficient_points():
    assert style.coefficient_points(LN10) == pytest.approx(400.0)
    assert style.coefficient_points(np.array([0.0, -LN10 / 2])) == pytest.approx([0.0, -200.0])


# --------------------------------------------------------------------------- votes with answers


def test_only_votes_with_both_answers():
    plain = pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["model_a"]})
    assert style.with_answers(plain).empty and list(style.with_answers(plain).columns) == list(plain.columns)
    half = plain.assign(answer_a=["a"])
    assert style.with_answers(half).empty
    df = pd.DataFrame({"model_a": ["x", "y", "x", "y"], "model_b": ["y", "x", "y", "x"],
                       "winner": ["model_a"] * 4, "answer_a": [None, "a", "b", "c"],
                       "answer_b": ["d", None, "e", "f"]})
    kept = style.with_answers(df)
    assert kept["answer_a"].tolist() == ["b", "c"] and kept.index.tolist() == [0, 1]
    assert list(kept.columns) == list(df.columns)  # the old index is not kept as a column


# --------------------------------------------------------------------------- style_control


def test_style_control_by_its_first_order_conditions():
    df = synthetic(300, seed=11)
    fitted = style.style_control(df, rounds=0)
    names, ia, ib, outcomes = arrays(df)
    features, kept = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist())
    assert fitted["votes"] == 300 and fitted["features"] == kept == ["length", "headers", "lists", "bold"]
    assert set(fitted) == {"votes", "features", "rating", "ci_low", "ci_high", "plain", "length_only",
                           "coefficients"}

    def back(table):  # Elo scale -> base-10 units
        return np.array([(table[name] - 1000.0) / 400.0 for name in names])

    ratings = back(fitted["rating"])
    beta = [fitted["coefficients"][name]["points"] * LN10 / 400.0 for name in kept]
    assert statistics.fmean(fitted["rating"].values()) == pytest.approx(1000.0)
    grad_r, grad_b = first_order(ia, ib, features, outcomes, np.ones(300), ratings, beta, style.STYLE_REG)
    assert np.abs(grad_r).max() < 2e-2 and np.abs(grad_b).max() < 2e-2
    # no bootstrap: the interval is the point
    assert fitted["ci_low"] == fitted["rating"] == fitted["ci_high"]
    for name in kept:
        coefficient = fitted["coefficients"][name]
        assert coefficient["ci_low"] == coefficient["points"] == coefficient["ci_high"]
    # the plain fit: the same votes, no style
    grad_r, _ = first_order(ia, ib, features[:, :0], outcomes, np.ones(300), back(fitted["plain"]), [], 0.0)
    assert np.abs(grad_r).max() < 2e-2
    # length alone is a third fit, neither of the two others
    length_only = back(fitted["length_only"])
    assert not np.allclose(length_only, ratings, atol=1e-4)
    assert not np.allclose(length_only, back(fitted["plain"]), atol=1e-4)


def test_length_only_fit_meets_its_conditions_and_falls_back_to_plain_without_length():
    df = synthetic(250, seed=2)
    fitted = style.style_control(df, rounds=0)
    names, ia, ib, outcomes = arrays(df)
    features, kept = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist())
    length = features[:, [kept.index("length")]]
    length_only = np.array([(fitted["length_only"][name] - 1000.0) / 400.0 for name in names])
    # the coefficient of length is not returned: it is the one that zeroes its own condition, found by bisection
    low, high = -20.0, 20.0
    for _ in range(100):
        middle = (low + high) / 2
        _, grad_b = first_order(ia, ib, length, outcomes, np.ones(len(df)), length_only, [middle],
                                style.STYLE_REG)
        low, high = (middle, high) if grad_b[0] < 0 else (low, middle)
    grad_r, _ = first_order(ia, ib, length, outcomes, np.ones(len(df)), length_only, [low], style.STYLE_REG)
    assert np.abs(grad_r).max() < 2e-2
    # answers of one length: no length feature, so "length only" is the plain fit
    same_length = df.assign(answer_a="one two three", answer_b="four five six")
    fitted = style.style_control(same_length, rounds=0)
    assert fitted["features"] == [] and fitted["coefficients"] == {}
    assert fitted["length_only"] == fitted["plain"] == fitted["rating"]


def test_regularisation_and_features_are_passed_on():
    df = synthetic(200, seed=5)
    names, ia, ib, outcomes = arrays(df)
    fitted = style.style_control(df, rounds=0, reg=50.0, features=("bold", "length"))
    assert fitted["features"] == ["bold", "length"]
    features, _ = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist(), ("bold", "length"))
    ratings = np.array([(fitted["rating"][name] - 1000.0) / 400.0 for name in names])
    beta = [fitted["coefficients"][name]["points"] * LN10 / 400.0 for name in ("bold", "length")]
    grad_r, grad_b = first_order(ia, ib, features, outcomes, np.ones(len(df)), ratings, beta, 50.0)
    assert np.abs(grad_r).max() < 2e-2 and np.abs(grad_b).max() < 2e-2
    # length alone is penalised alike: its coefficient is the one that zeroes its own condition
    length = features[:, [1]]
    length_only = np.array([(fitted["length_only"][name] - 1000.0) / 400.0 for name in names])
    low, high = -20.0, 20.0
    for _ in range(100):
        middle = (low + high) / 2
        _, grad_b = first_order(ia, ib, length, outcomes, np.ones(len(df)), length_only, [middle], 50.0)
        low, high = (middle, high) if grad_b[0] < 0 else (low, middle)
    grad_r, _ = first_order(ia, ib, length, outcomes, np.ones(len(df)), length_only, [low], 50.0)
    assert np.abs(grad_r).max() < 2e-2
    # and so are the bootstrap rounds: a huge penalty holds every round's coefficients at zero
    held = style.style_control(df, rounds=20, seed=1, reg=1e7)
    for coefficient in held["coefficients"].values():
        assert abs(coefficient["ci_low"]) < 0.05 and abs(coefficient["ci_high"]) < 0.05


def test_the_defaults_are_a_thousand_rounds_from_seed_zero():
    df = synthetic(40, seed=8, n_models=2)
    assert style.style_control(df) == style.style_control(df, rounds=1000, seed=0, reg=0.5,
                                                          features=("length", "headers", "lists", "bold"))
    assert style.style_control(df) != style.style_control(df, rounds=999, seed=0)


def sandwich_errors(ia, ib, features, outcomes, ratings, beta, reg):
    """Standard errors of (r_0 - r_1, beta...) by the sandwich H^-1 M H^-1: H the Hessian of the summed
    objective, M the sum of the squared residuals' outer products (what resampling the votes measures,
    ties and all, whether or not the votes follow the model)."""
    n_models = len(ratings)
    rows = []
    for i in range(len(outcomes)):
        x = np.zeros(n_models + features.shape[1])
        x[ia[i]] += LN10
        x[ib[i]] -= LN10
        x[n_models:] = features[i]
        rows.append(x)
    design = np.array(rows)
    z = design @ np.concatenate([ratings, beta])
    p = 1 / (1 + np.exp(-z))
    hessian = design.T @ (design * (p * (1 - p))[:, None])
    hessian[n_models:, n_models:] += reg * np.eye(features.shape[1])
    hessian[:n_models, :n_models] += 1e-9  # the ratings' common shift is free: pin it
    inverse = np.linalg.pinv(hessian)
    meat = design.T @ (design * ((outcomes - p) ** 2)[:, None])
    covariance = inverse @ meat @ inverse
    contrast = np.zeros(design.shape[1])
    contrast[0], contrast[1] = 1, -1
    gap = math.sqrt(contrast @ covariance @ contrast)
    return gap, [math.sqrt(covariance[n_models + j, n_models + j]) for j in range(features.shape[1])]


def test_the_bootstrap_interval_has_the_width_of_the_standard_error():
    df = synthetic(600, seed=21, n_models=2)
    fitted = style.style_control(df, rounds=600, seed=3)
    names, ia, ib, outcomes = arrays(df)
    features, kept = style.style_features(df["answer_a"].tolist(), df["answer_b"].tolist())
    ratings = np.array([(fitted["rating"][name] - 1000.0) / 400.0 for name in names])
    beta = np.array([fitted["coefficients"][name]["points"] * LN10 / 400.0 for name in kept])
    gap_error, beta_errors = sandwich_errors(ia, ib, features, outcomes, ratings, beta, style.STYLE_REG)
    # each model's rating is half the gap from the centre: its 95% interval is about +-1.96 x half its error
    for name in names:
        width = (fitted["ci_high"][name] - fitted["ci_low"][name]) / 400.0
        assert width == pytest.approx(2 * 1.96 * gap_error / 2, rel=0.1), name
        assert fitted["ci_low"][name] < fitted["rating"][name] < fitted["ci_high"][name]
    for name, error in zip(kept, beta_errors):
        coefficient = fitted["coefficients"][name]
        width = (coefficient["ci_high"] - coefficient["ci_low"]) * LN10 / 400.0
        assert width == pytest.approx(2 * 1.96 * error, rel=0.1), name
        assert coefficient["ci_low"] < coefficient["points"] < coefficient["ci_high"]


def test_the_bootstrap_is_seeded_and_split_into_chunks_without_changing_it(monkeypatch):
    df = synthetic(120, seed=9)
    first = style.style_control(df, rounds=10, seed=5)
    assert style.style_control(df, rounds=10, seed=5) == first
    assert style.style_control(df, rounds=10, seed=6)["ci_low"] != first["ci_low"]
    monkeypatch.setattr(style, "_MAX_CELLS", 120 * 3)  # three rounds at a time: 3 + 3 + 3 + 1
    chunked = style.style_control(df, rounds=10, seed=5)
    for key in ("ci_low", "ci_high"):
        assert chunked[key] == pytest.approx(first[key], abs=0.05)
    monkeypatch.setattr(style, "_MAX_CELLS", 1)  # more votes than cells: still one round at a time
    alone = style.style_control(df, rounds=10, seed=5)
    for key in ("ci_low", "ci_high"):
        assert alone[key] == pytest.approx(first[key], abs=0.05)


def test_one_round_of_bootstrap_is_an_interval_of_that_round():
    df = synthetic(100, seed=13)
    point = style.style_control(df, rounds=0)
    one = style.style_control(df, rounds=1, seed=2)
    assert one["rating"] == point["rating"]
    assert one["ci_low"] == one["ci_high"] != one["rating"]  # the one resampled fit, not the point


def test_style_control_returns_none_without_answers():
    assert style.style_control(pd.DataFrame(columns=["model_a", "model_b", "winner", "answer_a", "answer_b"])) is None
