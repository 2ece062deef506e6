"""Ratings from arena votes, computed as FastChat's arena does (serve/monitor/elo_analysis.py
and rating_systems.py), so that our numbers mean what readers of the LMSYS leaderboard expect.

Input everywhere is a "battles" frame with columns `model_a`, `model_b`, `winner`
(`model_a | model_b | tie | tie (bothbad)`), one row per vote.

- Bradley-Terry by maximum likelihood: logistic loss on rating differences (base 10), ties
  as outcome 0.5 (half a win each way), L-BFGS (scipy), scaled x400 + 1000, optionally
  anchored on one model. 95% intervals: 2.5/97.5% quantiles over bootstrap refits, where a
  bootstrap sample is drawn as multinomial counts over the unique (a, b, outcome) cells
  (FastChat's trick), and all rounds are refitted in ONE vectorised L-BFGS problem (the
  loss is a sum of independent per-round losses), which is what makes 1,000 rounds fast.
- Online Elo (K=4, start 1000) in vote order, a secondary figure.
- Wins/losses/ties, win rate with ties as half and a Wilson interval, pairwise matrix.
- rank = 1 + number of models whose lower bound is above this model's upper bound.
- Style control (`style.py`, FastChat's `compute_style_control`): when the votes carry their battle's
  answers (`answer_a`, `answer_b`, as `votes_frame` gives them), every row also has the rating with
  the answers' length and markdown held equal, its interval and rank, and how many points of the plain
  rating style (`style_points`) and length alone (`length_points`) account for.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")
TIES = ("tie", "tie (bothbad)")
SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0


# -- input ---------------------------------------------------------------------------
def as_battles(votes: Any) -> pd.DataFrame:
    """A clean battles frame from a DataFrame or a list of dicts (`votes_frame` reads the store's)."""
    df = votes if isinstance(votes, pd.DataFrame) else pd.DataFrame(list(votes))
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ("model_a", "model_b", "winner")})
    missing = {"model_a", "model_b", "winner"} - set(df.columns)
    if missing:
        raise ValueError(f"votes need columns model_a, model_b, winner (missing: {', '.join(sorted(missing))})")
    bad = ~df["winner"].isin(WINNERS)
    if bad.any():
        raise ValueError(f"winner must be one of {', '.join(WINNERS)}; got {df.loc[bad, 'winner'].iloc[0]!r}")
    return df.reset_index(drop=True)


def votes_frame(store, include_flagged: bool = False) -> pd.DataFrame:
    """The stored votes as a battles frame (model ids), without flagged battles' or flagged votes, with
    their battle's two answers.

    Imported votes have no battle row (and no answers) and are included unless the vote itself is flagged.
    """
    flagged_clause = "" if include_flagged else "WHERE b.flagged_reason IS NULL AND v.flagged_reason IS NULL"
    return store.query_df(  # the answers (NULL for imported votes) are what style control reads
        "SELECT v.model_a, v.model_b, v.winner, v.voter, v.battle_id, v.ts, b.answer_a, b.answer_b "
        f"FROM votes v LEFT JOIN battles b ON b.id = v.battle_id {flagged_clause} ORDER BY v.ts, v.id"
    )


REMOVED_MARK = " (removed)"


def display_names(store) -> dict[str, str]:
    """model id -> display name from the registry (ids not registered map to themselves).

    The rule for removed models: their votes still count (they rate the models they met), and
    they stay on the leaderboard under their name marked " (removed)", so no figure changes
    without a vote changing."""
    return {model_id: name + (REMOVED_MARK if removed else "") for model_id, name, removed in store.query_rows(
        "SELECT id, display_name, removed_at IS NOT NULL FROM arena_models")}


# -- counts and win rates ---------------------------------------------------------------
def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; `successes` may be fractional (ties as half).

    For whole counts this equals scipy's `binomtest(k, n).proportion_ci(method="wilson")`.
    """
    if n <= 0:
        return (0.0, 1.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def model_records(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per model: wins, losses, ties, votes, win_rate (ties as half), Wilson bounds."""
    df = as_battles(df)
    out: dict[str, dict[str, Any]] = {}
    is_tie = df["winner"].isin(TIES)
    for side, other in (("model_a", "model_b"), ("model_b", "model_a")):
        g = pd.DataFrame(
            {
                "model": df[side],
                "win": (df["winner"] == side).astype(int),
                "loss": (df["winner"] == other).astype(int),
                "tie": is_tie.astype(int),
            }
        ).groupby("model").sum()
        for model, row in g.iterrows():
            rec = out.setdefault(model, {"wins": 0, "losses": 0, "ties": 0})
            rec["wins"] += int(row["win"])
            rec["losses"] += int(row["loss"])
            rec["ties"] += int(row["tie"])
    for rec in out.values():
        n = rec["wins"] + rec["losses"] + rec["ties"]
        score = rec["wins"] + 0.5 * rec["ties"]
        rec["votes"] = n
        rec["win_rate"] = score / n if n else float("nan")
        rec["win_rate_low"], rec["win_rate_high"] = wilson_interval(score, n)
    return out


def pairwise_win_rate(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rates, counts): rates[row][col] = row's win rate against col (ties as half), and
    the number of votes behind each cell. The diagonal is NaN / 0."""
    df = as_battles(df)
    models = sorted(set(df["model_a"]) | set(df["model_b"]))
    score = pd.DataFrame(0.0, index=models, columns=models)
    count = pd.DataFrame(0, index=models, columns=models)
    a_score = np.where(df["winner"] == "model_a", 1.0, np.where(df["winner"] == "model_b", 0.0, 0.5))
    grouped = pd.DataFrame({"a": df["model_a"], "b": df["model_b"], "s": a_score}).groupby(["a", "b"])["s"]
    for (a, b), s in grouped.agg(["sum", "count"]).iterrows():
        score.loc[a, b] += s["sum"]
        score.loc[b, a] += s["count"] - s["sum"]
        count.loc[a, b] += int(s["count"])
        count.loc[b, a] += int(s["count"])
    rates = score / count.replace(0, np.nan)
    return rates, count


def headline(df: pd.DataFrame, model: str, opponent: str | None = None) -> dict[str, Any]:
    """The two-model figure: `model`'s win rate (ties as half) against `opponent` (or
    against everyone), with its Wilson interval and the votes behind it."""
    df = as_battles(df)
    mine = (df["model_a"] == model) | (df["model_b"] == model)
    if opponent is not None:
        mine &= (df["model_a"] == opponent) | (df["model_b"] == opponent)
    sub = df[mine]
    won = ((sub["model_a"] == model) & (sub["winner"] == "model_a")) | (
        (sub["model_b"] == model) & (sub["winner"] == "model_b")
    )
    ties = sub["winner"].isin(TIES)
    wins, n_ties, n = int(won.sum()), int(ties.sum()), len(sub)
    score = wins + 0.5 * n_ties
    low, high = wilson_interval(score, n)
    return {
        "model": model,
        "opponent": opponent,
        "wins": wins,
        "losses": n - wins - n_ties,
        "ties": n_ties,
        "votes": n,
        "win_rate": score / n if n else float("nan"),
        "win_rate_low": low,
        "win_rate_high": high,
    }


# -- online Elo ---------------------------------------------------------------------------
def compute_elo(df: pd.DataFrame, k: float = 4, scale: float = SCALE, base: float = BASE,
                init_rating: float = INIT_RATING) -> dict[str, float]:
    """FastChat's `compute_elo`: one pass in vote order (the loop runs on integer codes)."""
    df = as_battles(df)
    n = len(df)
    idx, models = pd.factorize(pd.concat([df["model_a"], df["model_b"]]))
    ia, ib = idx[:n].tolist(), idx[n:].tolist()
    winner = df["winner"].to_numpy()
    score_a = np.where(winner == "model_a", 1.0, np.where(winner == "model_b", 0.0, 0.5)).tolist()
    rating = [float(init_rating)] * len(models)
    for a, b, sa in zip(ia, ib, score_a):
        ra, rb = rating[a], rating[b]
        ea = 1 / (1 + base ** ((rb - ra) / scale))
        eb = 1 / (1 + base ** ((ra - rb) / scale))
        rating[a] = ra + k * (sa - ea)
        rating[b] = rb + k * (1 - sa - eb)
    return dict(zip(models, rating))


# -- Bradley-Terry ------------------------------------------------------------------------
def preprocess_for_bt(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """FastChat's `preprocess_for_bt`: the unique (a, b, outcome) cells and how often each
    occurs (cells found through one integer code per vote, which is much faster than
    `np.unique(..., axis=0)` on 100,000 rows)."""
    df = as_battles(df)
    n = len(df)
    idx, models = pd.factorize(pd.concat([df["model_a"], df["model_b"]]))
    winner = df["winner"].to_numpy()
    outcome_code = np.where(winner == "model_a", 2, np.where(winner == "model_b", 0, 1))
    m = len(models)
    codes, weights = np.unique((idx[:n] * m + idx[n:]) * 3 + outcome_code, return_counts=True)
    pair, outcome_code = np.divmod(codes, 3)
    matchups = np.column_stack(np.divmod(pair, m)).astype(np.int64)
    return matchups, outcome_code / 2.0, list(models), weights.astype(np.float64)


def _bt_loss_and_grad(flat: np.ndarray, design: np.ndarray, outcomes: np.ndarray,
                      weights: np.ndarray, alpha: float):
    """Logistic loss of R independent rating vectors at once (weights: R x cells).

    `design` is the cells x models incidence matrix (+1 for model_a, -1 for model_b), so
    the logits of every round are one matrix product and so is the gradient.
    """
    ratings = flat.reshape(weights.shape[0], design.shape[1])
    logits = alpha * (ratings @ design.T)
    # -[y log p + (1 - y) log(1 - p)] with p = sigmoid(logit), computed stably
    loss = (weights * (np.logaddexp(0.0, logits) - outcomes * logits)).sum()
    grad = (-alpha * (outcomes - special.expit(logits)) * weights) @ design
    return loss, grad.ravel()


def fit_bt(matchups: np.ndarray, outcomes: np.ndarray, weights: np.ndarray, n_models: int,
           alpha: float = math.log(BASE), tol: float = 1e-6, maxiter: int = 100) -> np.ndarray:
    """Maximum-likelihood ratings (natural units) by L-BFGS, as FastChat's `fit_bt`.

    `weights` may be 2-D (rounds x cells): every row is then fitted at once and a
    (rounds x models) array comes back. Each rating vector is centred on zero (the
    likelihood only sees differences).
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    w = w / w.sum(axis=1, keepdims=True).clip(min=1e-12)
    rounds = w.shape[0]
    design = np.zeros((matchups.shape[0], n_models))
    rows = np.arange(matchups.shape[0])
    design[rows, matchups[:, 0]] += 1.0
    design[rows, matchups[:, 1]] -= 1.0
    result = optimize.minimize(
        _bt_loss_and_grad,
        x0=np.zeros(rounds * n_models),
        args=(design, outcomes, w, alpha),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": maxiter * (1 if rounds == 1 else 5), "gtol": tol},
    )
    ratings = result.x.reshape(rounds, n_models)
    ratings -= ratings.mean(axis=1, keepdims=True)
    return ratings[0] if np.ndim(weights) == 1 else ratings


def _scale(ratings: np.ndarray, models: list[str], anchor: tuple[str, float] | None) -> np.ndarray:
    scaled = ratings * SCALE + INIT_RATING
    if anchor is not None and anchor[0] in models:
        i = models.index(anchor[0])
        scaled = scaled + (anchor[1] - scaled[..., [i]])
    return scaled


def compute_bt(df: pd.DataFrame, anchor: tuple[str, float] | None = None, cells=None) -> pd.Series:
    """Bradley-Terry ratings on the Elo scale (x400 + 1000), highest first.

    `cells`: the output of `preprocess_for_bt(df)` when the caller already has it.
    """
    matchups, outcomes, models, weights = cells or preprocess_for_bt(df)
    if not models:
        return pd.Series(dtype=float)
    ratings = fit_bt(matchups, outcomes, weights, len(models))
    return pd.Series(_scale(ratings, models, anchor), index=models).sort_values(ascending=False)


def bootstrap_bt(df: pd.DataFrame, rounds: int = 1000, seed: int = 0,
                 anchor: tuple[str, float] | None = None, cells=None) -> pd.DataFrame:
    """Ratings refitted on `rounds` bootstrap resamples (rows: rounds, columns: models).

    A resample of N votes is a multinomial draw of N over the unique cells, with the cells'
    observed frequencies as probabilities: the same distribution as resampling votes, at
    the cost of the number of cells instead of the number of votes.
    """
    matchups, outcomes, models, weights = cells or preprocess_for_bt(df)
    if not models or rounds <= 0:
        return pd.DataFrame(columns=models, dtype=float)
    rng = np.random.default_rng(seed)
    n = int(weights.sum())
    boot = rng.multinomial(n, weights / weights.sum(), size=rounds).astype(np.float64)
    ratings = fit_bt(matchups, outcomes, boot, len(models))
    return pd.DataFrame(_scale(ratings, models, anchor), columns=models)


def rank_models(ci_low: dict[str, float], ci_high: dict[str, float]) -> dict[str, int]:
    """FastChat's rank: 1 + how many models are surely better (their low > my high)."""
    return {m: 1 + sum(1 for o in ci_low if o != m and ci_low[o] > ci_high[m]) for m in ci_low}


# -- the table ---------------------------------------------------------------------------
def leaderboard(votes: Any, rounds: int = 1000, seed: int = 0, names: dict[str, str] | None = None,
                anchor: tuple[str, float] | None = None, style: bool = True) -> list[dict[str, Any]]:
    """One dict per model, best first: model, rating, ci_low, ci_high, wins, losses, ties,
    votes, win_rate, win_rate_low, win_rate_high, elo, rank, and the style-controlled figures
    (`style_rating`, `style_ci_low`, `style_ci_high`, `style_rank`, `style_points`, `length_points`;
    None where no vote of the model has its battle's answers, or with `style=False`).

    `votes`: a battles frame / list of dicts (`votes_frame(store)` for the stored votes).
    `names` maps ids to display names (`display_names(store)`; ids as they are by default).
    """
    df = as_battles(votes)
    names = names or {}
    if df.empty:
        return []
    styled = _style_figures(df, rounds, seed, anchor) if style else {}
    cells = preprocess_for_bt(df)
    bt = compute_bt(df, anchor=anchor, cells=cells)
    boot = bootstrap_bt(df, rounds=rounds, seed=seed, anchor=anchor, cells=cells)
    if rounds > 0:
        low = boot.quantile(0.025).to_dict()
        high = boot.quantile(0.975).to_dict()
    else:
        low, high = bt.to_dict(), bt.to_dict()
    ranks = rank_models(low, high)
    elo = compute_elo(df)
    records = model_records(df)
    rows = []
    for model, rating in bt.items():
        rec = records[model]
        rows.append(
            {
                "model": names.get(model, model),
                "model_id": model,
                "rating": round(float(rating), 2),
                "ci_low": round(float(low[model]), 2),
                "ci_high": round(float(high[model]), 2),
                "wins": rec["wins"],
                "losses": rec["losses"],
                "ties": rec["ties"],
                "votes": rec["votes"],
                "win_rate": round(rec["win_rate"], 4),
                "win_rate_low": round(rec["win_rate_low"], 4),
                "win_rate_high": round(rec["win_rate_high"], 4),
                "elo": round(elo[model], 2),
                "rank": ranks[model],
                **styled.get(model, dict.fromkeys(STYLE_KEYS)),
            }
        )
    rows.sort(key=lambda r: (r["rank"], -r["rating"]))
    return rows


STYLE_KEYS = ("style_rating", "style_ci_low", "style_ci_high", "style_rank", "style_points", "length_points")


def _style_figures(df: pd.DataFrame, rounds: int, seed: int,
                   anchor: tuple[str, float] | None) -> dict[str, dict[str, Any]]:
    """Per model, the style-controlled figures of `leaderboard` ({} when no vote has answers)."""
    from . import style

    fitted = style.style_control(df, rounds=rounds, seed=seed)
    if fitted is None:
        return {}
    shift = 0.0
    if anchor is not None and anchor[0] in fitted["rating"]:
        shift = anchor[1] - fitted["rating"][anchor[0]]
    ranks = rank_models(fitted["ci_low"], fitted["ci_high"])
    return {model: {
        "style_rating": round(rating + shift, 2),
        "style_ci_low": round(fitted["ci_low"][model] + shift, 2),
        "style_ci_high": round(fitted["ci_high"][model] + shift, 2),
        "style_rank": ranks[model],
        "style_points": round(fitted["plain"][model] - rating, 2),  # plain minus controlled, same votes
        "length_points": round(fitted["plain"][model] - fitted["length_only"][model], 2),
    } for model, rating in fitted["rating"].items()}


def guess_finetuned(store, model_ids: list[str]) -> str | None:
    """Of two models, the fine-tuned one: an adapter, a model from a training run, an
    OpenAI `ft:` id; else the one registered last. None when neither is registered."""
    import json

    rows = store.query_rows(
        "SELECT id, kind, config_json FROM arena_models WHERE id IN (SELECT unnest(?)) ORDER BY created_at, id",
        [list(model_ids)],
    )
    if not rows:
        return None
    for model_id, kind, config_json in rows:
        config = json.loads(config_json or "{}")
        if kind == "hf_adapter" or config.get("run_dir") or str(config.get("model", "")).startswith("ft:"):
            return model_id
    return rows[-1][0]


def summary(store, rounds: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Everything the Leaderboard tab shows, from the store: the table, the pairwise
    matrix (display names) with its vote counts, and, with exactly two models, the
    headline for the fine-tuned one."""
    df = as_battles(votes_frame(store))
    names = display_names(store)
    rows = leaderboard(df, rounds=rounds, seed=seed, names=names)
    rates, counts = pairwise_win_rate(df)
    rates = rates.rename(index=names, columns=names)
    counts = counts.rename(index=names, columns=names)
    head = None
    models = sorted(set(df["model_a"]) | set(df["model_b"]))
    if len(models) == 2:
        tuned = guess_finetuned(store, models) or models[1]
        other = models[0] if tuned == models[1] else models[1]
        head = headline(df, tuned, other)
        head["model"] = names.get(tuned, tuned)
        head["opponent"] = names.get(other, other)
        head.update(_style_lead(rows, tuned, other))
    return {"leaderboard": rows, "pairwise": rates, "pairwise_counts": counts, "headline": head,
            "votes": len(df)}


def _style_lead(rows: list[dict[str, Any]], tuned: str, other: str) -> dict[str, Any]:
    """The fine-tuned model's lead in rating points, plain and with style controlled (None without answers)."""
    by_id = {r["model_id"]: r for r in rows}
    lead = round(by_id[tuned]["rating"] - by_id[other]["rating"], 2)
    mine, theirs = by_id[tuned].get("style_rating"), by_id[other].get("style_rating")
    style_lead = None if mine is None or theirs is None else round(mine - theirs, 2)
    return {"lead": lead, "style_lead": style_lead}
