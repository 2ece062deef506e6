"""Style-controlled ratings: how the models rank once the answers' length and markdown are held equal.

People prefer longer, better-formatted answers whatever they say, so a model can climb the plain
Bradley-Terry table by writing more. FastChat's arena separates the two (its `compute_style_control`,
"Does style matter?", LMSYS, August 2024), and this module does the same:

- per vote, four style features of the two answers: length (words, a stand-in for tokens), markdown
  headers, list items and bold spans; each as the normalised difference (a - b) / (a + b + 1), then
  standardised over the votes (a feature that never varies is left out);
- a Bradley-Terry logistic regression with those features as extra covariates:
  P(a wins) = sigmoid(ln10 * (r_a - r_b) + beta . features), ties as half a win each way, the
  ratings unpenalised (as in the plain fit) and a small L2 penalty (FastChat's 0.5) on beta only;
- the ratings on the Elo scale (x400 + 1000), with 95% bootstrap intervals over resampled votes (a
  Poisson bootstrap: each vote counted Poisson(1) times, which draws 20,000 votes x 1,000 rounds far
  faster than a multinomial and has the same large-sample behaviour), every round refitted in one
  vectorised L-BFGS problem (as `ratings.bootstrap_bt`);
- the style coefficients as rating points: what one standard deviation of a feature is worth.

The difference between a model's plain rating and its style-controlled rating (fitted on the same
votes) is the part of its standing that its style earned: `style_points`; `length_points` is the same
with length alone controlled. Only votes whose battle has both answers take part (imported votes have
no answers).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

FEATURES = ("length", "headers", "lists", "bold")
STYLE_REG = 0.5  # FastChat's L2 penalty (on the summed loss), applied here to the style coefficients only
SCALE = 400.0
INIT_RATING = 1000.0
ALPHA = math.log(10.0)
_MAX_CELLS = 4_000_000  # bootstrap rounds x votes fitted at once (memory: 8 bytes each, a few arrays)

_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.M)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def answer_style(text: str | None) -> dict[str, int]:
    """The style counts of one answer: words, markdown headers, list items, bold spans."""
    text = text or ""
    return {"length": len(text.split()), "headers": len(_HEADER.findall(text)),
            "lists": len(_LIST_ITEM.findall(text)), "bold": len(_BOLD.findall(text))}


def style_features(answers_a: list[str], answers_b: list[str],
                   features: tuple[str, ...] = FEATURES) -> tuple[np.ndarray, list[str]]:
    """(votes x kept features matrix, kept feature names): normalised differences, standardised.

    A feature with no spread (say, no answer ever has a header) carries no information and would
    divide by zero: it is dropped, and its name is not returned.
    """
    counts_a = [answer_style(t) for t in answers_a]
    counts_b = [answer_style(t) for t in answers_b]
    columns, kept = [], []
    for name in features:
        a = np.array([c[name] for c in counts_a], dtype=np.float64)
        b = np.array([c[name] for c in counts_b], dtype=np.float64)
        diff = (a - b) / (a + b + 1.0)
        spread = diff.std()
        if len(diff) < 2 or spread < 1e-9:
            continue
        columns.append((diff - diff.mean()) / spread)
        kept.append(name)
    matrix = np.column_stack(columns) if columns else np.zeros((len(counts_a), 0))
    return matrix, kept


def _outcomes(winner: np.ndarray) -> np.ndarray:
    return np.where(winner == "model_a", 1.0, np.where(winner == "model_b", 0.0, 0.5))


def _loss_and_grad(flat: np.ndarray, design: np.ndarray, outcomes: np.ndarray, weights: np.ndarray,
                   n_models: int, reg: np.ndarray):
    """Logistic loss of R independent (ratings, coefficients) vectors at once; weights: R x votes,
    each row summing to 1 (a mean loss), `reg` the per-round penalty on the coefficients."""
    params = flat.reshape(weights.shape[0], design.shape[1])
    logits = params @ design.T
    loss = (weights * (np.logaddexp(0.0, logits) - outcomes * logits)).sum()
    grad = ((special.expit(logits) - outcomes) * weights) @ design
    coefficients = params[:, n_models:]
    loss += 0.5 * (reg[:, None] * coefficients * coefficients).sum()
    grad[:, n_models:] += reg[:, None] * coefficients
    return loss, grad.ravel()


def fit_style_bt(model_a: np.ndarray, model_b: np.ndarray, features: np.ndarray, outcomes: np.ndarray,
                 weights: np.ndarray, n_models: int, reg: float = STYLE_REG, tol: float = 1e-6,
                 maxiter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(ratings, coefficients) by L-BFGS: ratings in base-10 units, centred on zero; coefficients in
    logit units per standard deviation. `weights` (votes, or rounds x votes) counts each vote; a 2-D
    one fits every row at once and returns (rounds x models, rounds x features)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    totals = w.sum(axis=1, keepdims=True).clip(min=1e-12)
    n_votes = len(outcomes)
    incidence = np.zeros((n_votes, n_models))
    rows = np.arange(n_votes)
    incidence[rows, model_a] += ALPHA
    incidence[rows, model_b] -= ALPHA
    design = np.hstack([incidence, features])
    per_round_reg = reg / totals[:, 0]  # FastChat's penalty is on the summed loss; ours is a mean
    result = optimize.minimize(
        _loss_and_grad, x0=np.zeros(w.shape[0] * design.shape[1]),
        args=(design, outcomes, w / totals, n_models, per_round_reg), jac=True, method="L-BFGS-B",
        options={"maxiter": maxiter * (1 if w.shape[0] == 1 else 5), "gtol": tol},
    )
    params = result.x.reshape(w.shape[0], design.shape[1])
    ratings = params[:, :n_models] - params[:, :n_models].mean(axis=1, keepdims=True)
    coefficients = params[:, n_models:]
    if np.ndim(weights) == 1:
        return ratings[0], coefficients[0]
    return ratings, coefficients


def coefficient_points(coefficient: float | np.ndarray) -> float | np.ndarray:
    """A style coefficient (logit per standard deviation) as rating points on the Elo scale."""
    return coefficient / ALPHA * SCALE


def with_answers(df: pd.DataFrame) -> pd.DataFrame:
    """The votes whose battle has both answers (imported votes have none)."""
    if not {"answer_a", "answer_b"} <= set(df.columns):
        return df.iloc[0:0]
    keep = df["answer_a"].notna() & df["answer_b"].notna()
    return df[keep].reset_index(drop=True)


def style_control(df: pd.DataFrame, rounds: int = 1000, seed: int = 0, reg: float = STYLE_REG,
                  features: tuple[str, ...] = FEATURES) -> dict[str, Any] | None:
    """Style-controlled ratings of a votes frame with `answer_a` / `answer_b` columns; None without
    such votes. Returns {"votes", "features", "rating", "ci_low", "ci_high", "plain", "length_only",
    "coefficients"}: per-model dicts on the Elo scale (mean 1000), `plain` the plain Bradley-Terry
    fit of the same votes (to compare like with like), `length_only` with length alone controlled,
    `coefficients` {feature: {"points", "ci_low", "ci_high"}}.
    """
    df = with_answers(df)
    if df.empty:
        return None
    n = len(df)
    idx, models = pd.factorize(pd.concat([df["model_a"], df["model_b"]]))
    ia, ib, m = idx[:n], idx[n:], len(models)
    outcomes = _outcomes(df["winner"].to_numpy())
    matrix, kept = style_features(df["answer_a"].tolist(), df["answer_b"].tolist(), features)
    ones = np.ones(n)
    ratings, coefficients = fit_style_bt(ia, ib, matrix, outcomes, ones, m, reg=reg)
    plain, _ = fit_style_bt(ia, ib, matrix[:, :0], outcomes, ones, m, reg=reg)
    if "length" in kept:
        length_col = matrix[:, [kept.index("length")]]
        length_only, _ = fit_style_bt(ia, ib, length_col, outcomes, ones, m, reg=reg)
    else:
        length_only = plain
    if rounds > 0:
        rng = np.random.default_rng(seed)
        chunk = max(1, _MAX_CELLS // max(n, 1))
        boot_ratings, boot_coefs = [], []
        for start in range(0, rounds, chunk):
            size = min(chunk, rounds - start)
            counts = rng.poisson(1.0, size=(size, n)).astype(np.float64)  # Poisson bootstrap: fast, same limit
            r, c = fit_style_bt(ia, ib, matrix, outcomes, counts, m, reg=reg)
            boot_ratings.append(r)
            boot_coefs.append(c)
        boot_r, boot_c = np.vstack(boot_ratings), np.vstack(boot_coefs)
        low_r, high_r = np.quantile(boot_r, 0.025, axis=0), np.quantile(boot_r, 0.975, axis=0)
        low_c, high_c = np.quantile(boot_c, 0.025, axis=0), np.quantile(boot_c, 0.975, axis=0)
    else:
        low_r = high_r = ratings
        low_c = high_c = coefficients

    def scaled(values: np.ndarray) -> dict[str, float]:
        return {str(model): float(v * SCALE + INIT_RATING) for model, v in zip(models, values)}

    return {
        "votes": n,
        "features": kept,
        "rating": scaled(ratings),
        "ci_low": scaled(low_r),
        "ci_high": scaled(high_r),
        "plain": scaled(plain),
        "length_only": scaled(length_only),
        "coefficients": {name: {"points": float(coefficient_points(coefficients[i])),
                                "ci_low": float(coefficient_points(low_c[i])),
                                "ci_high": float(coefficient_points(high_c[i]))} for i, name in enumerate(kept)},
    }
