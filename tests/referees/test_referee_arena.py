"""Arena checks against referees: hand-derived Bradley-Terry ratings, every battle served, and a
stand-in endpoint that really answers 401 with the key it was given."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest

from ftassist.arena import battles, ratings
from ftassist.arena import models as arena_models
from ftassist.store import get_store


def battles_frame(a_wins: int, b_wins: int, ties: int, swap: random.Random | None = None) -> pd.DataFrame:
    """Votes between x and y, x stored as model_a; with `swap`, each vote's sides are flipped at random
    (model_a/model_b exchanged and the winner relabelled), which describes the same outcomes."""
    rows = ([("x", "y", "model_a")] * a_wins + [("x", "y", "model_b")] * b_wins + [("x", "y", "tie")] * ties)
    if swap is not None:
        flip = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}
        rows = [(b, a, flip[w]) if swap.random() < 0.5 else (a, b, w) for a, b, w in rows]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def two_model_ratings(x_score: float, n: int) -> tuple[float, float]:
    """The Bradley-Terry maximum-likelihood ratings of two models, worked out by hand: the fitted
    probability that x beats y equals x's observed score share s (ties as half), so the gap is
    400 log10(s / (1 - s)), split evenly around 1000."""
    share = x_score / n
    gap = 400 * math.log10(share / (1 - share))
    return 1000 + gap / 2, 1000 - gap / 2


# -- 5. ties are half a win for each side, whichever side a model was stored on -------------
def test_equal_wins_and_ties_give_equal_ratings_even_with_one_model_always_stored_as_a():
    df = battles_frame(a_wins=10, b_wins=10, ties=30)
    assert set(df["model_a"]) == {"x"}  # every battle stores x as A
    bt = ratings.compute_bt(df)
    assert bt["x"] == pytest.approx(1000.0, abs=1e-6) and bt["y"] == pytest.approx(1000.0, abs=1e-6)
    rows = {r["model_id"]: r for r in ratings.leaderboard(df, rounds=0)}
    assert rows["x"]["rating"] == rows["y"]["rating"] == 1000.0
    assert rows["x"]["win_rate"] == rows["y"]["win_rate"] == 0.5  # (10 + 30/2) / 50, by hand


def test_ratings_match_the_hand_derived_fit_whatever_the_side_order():
    fixed = battles_frame(a_wins=20, b_wins=10, ties=15)
    shuffled = battles_frame(a_wins=20, b_wins=10, ties=15, swap=random.Random(3))
    assert set(shuffled["model_a"]) == {"x", "y"}  # the order really was mixed
    x_expected, y_expected = two_model_ratings(20 + 15 / 2, 45)  # 27.5 of 45: gap ~78.5
    for df in (fixed, shuffled):
        bt = ratings.compute_bt(df)
        assert bt["x"] == pytest.approx(x_expected, abs=1e-3) and bt["y"] == pytest.approx(y_expected, abs=1e-3)
    fit_fixed, fit_shuffled = ratings.compute_bt(fixed), ratings.compute_bt(shuffled)
    assert fit_fixed["x"] == pytest.approx(fit_shuffled["x"], abs=1e-3)


# -- flagged battles: checked over every battle, not a random draw -------------------------
def test_no_flagged_battle_is_ever_served_and_every_clean_one_is():
    store = get_store()
    clean = {battles.add_battle(store, f"question {i}", "m1", "m2", f"Answer {i}.", f"Reply {i}.") for i in range(12)}
    leaky = {
        battles.add_battle(store, "who?", "m1", "m2", "As ChatGPT, made by OpenAI, I say Paris.", "Paris."),
        battles.add_battle(store, "who?", "m1", "m2", "Paris.", "I am Claude, and it is Paris."),
        battles.add_battle(store, "who?", "m1", "m2", "Llama 3 here: Paris.", "Paris."),
        battles.add_battle(store, "empty", "m1", "m2", "Paris.", "   "),
    }
    named = battles.add_battle(store, "who?", "m1", "m2", "I am Zephyrine-7 from the lab.", "Hello.")
    clean.add(named)  # no known name in it yet ...
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES "
                  "('zx', 'openai_compatible', 'Zephyrine-7', '{}')")
    assert battles.reflag_battles(store) == len(leaky) + 1  # ... until a model of that name is registered
    clean.discard(named)
    leaky.add(named)
    flagged = {bid for bid, reason in store.query_rows("SELECT id, flagged_reason FROM battles") if reason}
    assert flagged == leaky  # the referee: the battles written above to give a model away (or be empty)

    for voter in ("alice", "bob"):
        served = []
        while (view := battles.next_battle(store, voter)) is not None:
            battle_id = store.query_rows("SELECT battle_id FROM battle_serves WHERE token = ?", [view.token])[0][0]
            served.append(battle_id)
            battles.vote(store, view.token, voter, "A")
            assert len(served) <= len(clean) + len(leaky)  # never loops
        assert sorted(served) == sorted(clean), f"{voter} was served {set(served) - clean or 'too few'}"
    assert len(ratings.votes_frame(store)) == 2 * len(clean)


# -- 7. a key echoed by an endpoint's 401 never reaches the arena's errors or tables --------
KEY = "local-secret-Qm7x2Vk9Lp4R"  # no provider key shape: only scrubbing by the key itself hides it


def test_a_key_echoed_in_a_401_never_reaches_stored_errors(openai_server, tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from ftassist.usecases import arena as arena_use_cases
    from ftassist.usecases.context import Context

    openai_server.expected_key = "the-right-key-0000"
    monkeypatch.setenv("ARENA_REFEREE_KEY", KEY)
    # the referee: the stand-in really quotes the key it is given in its 401 body
    request = urllib.request.Request(openai_server.base_url + "/chat/completions", data=b"{}",
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(request, timeout=10)
    assert answered.value.code == 401 and KEY in answered.value.read().decode()

    ctx = Context.open()
    store = ctx.store
    config = {"base_url": openai_server.base_url, "api_key_env": "ARENA_REFEREE_KEY", "max_retries": 0}
    ids = [arena_models.add_model(store, "openai_compatible", name, {**config, "model": model})
           for name, model in (("Base", "base"), ("Tuned", "tuned"))]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\nName a primary colour.\n", encoding="utf-8")

    result = arena_use_cases.generate_battles(ctx, ids, prompts_path=str(prompts))

    assert result.battles == 0 and len(result.errors) == 4  # 2 prompts x 2 models, each refused
    assert all("401" in e["error"] or "AuthenticationError" in e["error"] for e in result.errors)
    assert sum(auth == f"Bearer {KEY}" for auth in openai_server.auth_headers) >= 4  # the key was sent ...
    assert KEY not in json.dumps([e if isinstance(e, dict) else vars(e) for e in result.errors], default=str)
    assert KEY not in repr(result)
    for (table,) in store.query_rows("SELECT table_name FROM information_schema.tables"):
        dump = json.dumps(store.query_rows(f'SELECT * FROM "{table}"'), default=str)
        assert KEY not in dump, f"the key is stored in {table}"
