import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from ftassist import store as store_mod
from ftassist.arena import battles, ratings


@pytest.fixture(autouse=True)
def fresh_rate_limit():
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = None
    yield
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = None


def seed(store, n=3, a="alpha", b="beta"):
    return [battles.add_battle(store, f"prompt {i}", a, b, f"answer from a {i}", f"answer from b {i}") for i in range(n)]


def stored_votes():
    return store_mod.get_store().query("SELECT battle_id, voter, winner, choice FROM votes ORDER BY ts")


def test_view_holds_only_token_prompt_answers_and_vote_maps_sides(store):
    (bid,) = seed(store, 1)
    seen_swaps = set()
    for voter in [f"v{i}" for i in range(40)]:
        view = battles.next_battle(store, voter)
        assert set(view.to_dict()) == {"token", "prompt", "answer_a", "answer_b"}
        assert "alpha" not in json.dumps(view.to_dict()) and bid not in json.dumps(view.to_dict())
        swapped = view.answer_a.startswith("answer from b")
        seen_swaps.add(swapped)
        reveal = battles.vote(store, view.token, voter, "A")
        # the left answer won: the stored winner is whichever model wrote it
        assert reveal.winner == ("model_b" if swapped else "model_a")
        assert (reveal.model_a, reveal.model_b) == (("beta", "alpha") if swapped else ("alpha", "beta"))
    assert seen_swaps == {True, False}  # sides really are randomised
    winners = {v["winner"] for v in stored_votes()}
    assert winners <= {"model_a", "model_b"}


def test_one_vote_per_voter_per_battle(store):
    seed(store, 1)
    view = battles.next_battle(store, "alice")
    first = battles.vote(store, view.token, "alice", "B")
    again = battles.vote(store, view.token, "alice", "A")
    assert not first.already_voted and again.already_voted
    assert again.winner == first.winner and "already voted" in again.message
    assert len(stored_votes()) == 1
    assert battles.next_battle(store, "alice") is None  # nothing left for alice
    bob = battles.next_battle(store, "bob")
    battles.vote(store, bob.token, "bob", "tie")
    assert sorted(v["winner"] for v in stored_votes()) == sorted([first.winner, "tie"])
    # the database itself refuses a second row for the same (battle, voter)
    with pytest.raises(duckdb.ConstraintException):
        store_mod.get_store().execute(
            "INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner) "
            "SELECT 'x', battle_id, voter, model_a, model_b, winner FROM votes WHERE voter = 'alice'"
        )


def test_token_is_bound_to_its_voter_and_choice_checked(store):
    seed(store, 1)
    view = battles.next_battle(store, "alice")
    with pytest.raises(battles.VoteError, match="another session"):
        battles.vote(store, view.token, "mallory", "A")
    with pytest.raises(battles.VoteError, match="Unknown choice"):
        battles.vote(store, view.token, "alice", "left")
    with pytest.raises(battles.VoteError, match="not known"):
        battles.vote(store, "made-up-token", "alice", "A")
    assert stored_votes() == []
    assert battles.vote(store, view.token, "alice", "bothbad").winner == "tie (bothbad)"


def test_skip_hides_the_battle_from_that_voter_only(store):
    seed(store, 1)
    view = battles.next_battle(store, "alice")
    battles.skip(store, view.token, "alice")
    assert battles.next_battle(store, "alice") is None
    assert battles.next_battle(store, "bob") is not None
    assert stored_votes() == []


def test_identity_leak_flags_battle_and_excludes_its_votes(store):
    clean = battles.add_battle(store, "q", "m1", "m2", "Paris.", "It is Paris.")
    leaky = battles.add_battle(store, "q", "m1", "m2", "As ChatGPT, made by OpenAI, I say Paris.", "Paris")
    store = store_mod.get_store()
    reasons = dict(store.query_rows("SELECT id, flagged_reason FROM battles"))
    assert reasons[clean] is None and "ChatGPT" in reasons[leaky]
    assert battles.identity_leak(["I am Claude"]) and battles.identity_leak(["Llama 3 here"])
    assert battles.identity_leak(["a meta-analysis of metadata"]) is None
    assert battles.identity_leak(["Built by Meta."])
    # registered display names count too, once registered
    battles.add_battle(store, "q", "m1", "m2", "I am Zephyrine-7 from the lab", "Hello")
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES "
                  "('zx', 'openai_compatible', 'Zephyrine-7', '{}')")
    assert battles.reflag_battles(store) == 2
    # flagged battles are not served; votes on them are kept but left out of the ratings
    for voter in ("a", "b", "c"):
        view = battles.next_battle(store, voter)
        assert "OpenAI" not in view.answer_a + view.answer_b and "Zephyrine" not in view.answer_a + view.answer_b
        battles.vote(store, view.token, voter, "A")
    view = battles._serve(store, leaky, "q", "x", "y", voter="d")
    reveal = battles.vote(store, view.token, "d", "B")
    assert reveal.flagged and "does not count" in reveal.message
    assert len(stored_votes()) == 4
    assert len(ratings.votes_frame(store)) == 3
    assert len(ratings.votes_frame(store, include_flagged=True)) == 4


def test_rate_limit_gives_a_clear_message(store):
    seed(store, 5)
    battles.rate_limiter.per_minute = 2
    for _ in range(2):
        view = battles.next_battle(store, "fast")
        battles.vote(store, view.token, "fast", "A")
    view = battles.next_battle(store, "fast")
    with pytest.raises(battles.RateLimited, match="2 votes a minute"):
        battles.vote(store, view.token, "fast", "A")
    assert len(stored_votes()) == 2
    other = battles.next_battle(store, "slow")
    battles.vote(store, other.token, "slow", "A")  # other voters are unaffected
    limiter = battles.RateLimiter(per_minute=1)
    limiter.check("v", now=0.0)
    with pytest.raises(battles.RateLimited):
        limiter.check("v", now=30.0)
    limiter.check("v", now=61.0)  # the window slid


def test_concurrent_voting_loses_nothing(store):
    seed(store, 12)
    voters = [f"voter{i}" for i in range(16)]

    def cast(voter):
        n = 0
        while (view := battles.next_battle(store, voter)) is not None:
            battles.vote(store, view.token, voter, "A" if n % 2 else "tie")
            n += 1
        return n

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(cast, voters))
    assert counts == [12] * 16
    rows = stored_votes()
    assert len(rows) == 16 * 12
    assert len({(r["battle_id"], r["voter"]) for r in rows}) == 16 * 12

    # many threads voting with the same token: exactly one vote counts
    view = battles.next_battle(store, "racer") or battles._serve(
        store, store.query_rows("SELECT id FROM battles LIMIT 1")[0][0], "p", "a", "b", "racer")
    with ThreadPoolExecutor(max_workers=8) as pool:
        reveals = list(pool.map(lambda c: battles.vote(store, view.token, "racer", c), ["A", "B", "tie", "A"] * 4))
    assert sum(not r.already_voted for r in reveals) == 1
    assert len([r for r in stored_votes() if r["voter"] == "racer"]) == 1


def test_votes_survive_restart(store):
    seed(store, 2)
    view = battles.next_battle(store, "alice")
    reveal = battles.vote(store, view.token, "alice", "A")
    store_mod.reset_store()
    rows = stored_votes()
    assert [(r["voter"], r["winner"]) for r in rows] == [("alice", reveal.winner)]


CRASH = """
import os, sys
from ftassist.arena import battles
from ftassist.store import get_store
store = get_store()
battles.add_battle(store, "p", "m1", "m2", "one", "two")
view = battles.next_battle(store, "crasher")
battles.vote(store, view.token, "crasher", "A")
os._exit(0)  # no close, no checkpoint: a crash right after the vote
"""


def test_vote_survives_a_crash(ftassist_home):
    store_mod.reset_store()
    done = subprocess.run([sys.executable, "-c", CRASH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [r["voter"] for r in stored_votes()] == ["crasher"]


def test_unlikely_voters_are_flagged_not_dropped(store):
    ids = seed(store, 30)
    honest = [f"h{i}" for i in range(6)]
    for voter in honest + ["contrarian"]:
        while (view := battles.next_battle(store, voter)) is not None:
            left_is_a = view.answer_a.startswith("answer from a")
            # honest voters prefer alpha's answers; the contrarian always picks beta's
            prefers_left = left_is_a if voter != "contrarian" else not left_is_a
            battles.vote(store, view.token, voter, "A" if prefers_left else "B")
    flagged = battles.flag_suspicious_voters(store, alpha=0.01, min_votes=10)
    assert [f["voter"] for f in flagged] == ["contrarian"]
    assert flagged[0]["agreement"] == 0 and flagged[0]["n_votes"] == len(ids)
    assert store_mod.get_store().query_rows("SELECT voter FROM voter_flags") == [("contrarian",)]
    assert len(ratings.votes_frame(store)) == 7 * 30  # flagged for review, still counted


def test_add_battle_rejects_bad_input_and_flags_empty_answers(store):
    with pytest.raises(ValueError, match="two different models"):
        battles.add_battle(store, "p", "m", "m", "a", "b")
    bid = battles.add_battle(store, "p", "m1", "m2", "", "b")
    assert store_mod.get_store().query_rows("SELECT flagged_reason FROM battles WHERE id = ?", [bid]) == [
        ("an answer is empty",)]


def test_load_prompts_from_chat_jsonl_and_txt(tmp_path):
    chat = tmp_path / "valid.jsonl"
    chat.write_text("\n".join(json.dumps(r) for r in [
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi?"},
                      {"role": "assistant", "content": "Hello."}]},
        {"prompt": "Name a colour", "completion": "Blue"},
    ]) + "\n")
    assert battles.load_prompts(chat) == [{"prompt": "Hi?", "reference": "Hello."},
                                          {"prompt": "Name a colour", "reference": "Blue"}]
    txt = tmp_path / "p.txt"
    txt.write_text("one\n\ntwo\nthree\n")
    assert len(battles.load_prompts(txt, n=2)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        battles.load_prompts(bad)


# -- on-demand answers from an OpenAI-compatible server (a real local HTTP server) ------------
def test_voter_prompt_answered_on_demand_by_an_openai_compatible_server(fake_llm, store):
    """Uses the fake OpenAI-compatible server of tests/arena/conftest.py (models.py's tests)."""
    models = pytest.importorskip("ftassist.arena.models", reason="models.py (other helper) not there yet")
    if "openai_compatible" not in getattr(models, "KINDS", ()):
        pytest.skip("models.py has no openai_compatible kind yet")
    server = fake_llm
    server.models = list(server.models) + ["srv-1", "srv-2"]
    server.answers = {"srv-1": lambda m: f"[1] you asked {m[-1]['content']!r}",
                      "srv-2": lambda m: f"[2] you asked {m[-1]['content']!r}"}
    first = models.add_model(store, "openai_compatible", "Pane One", {"base_url": server.base_url, "model": "srv-1", "max_retries": 0})
    second = models.add_model(store, "openai_compatible", "Pane Two", {"base_url": server.base_url, "model": "srv-2", "max_retries": 0})
    view = battles.battle_for_prompt(store, "What is blue?", "carol", model_ids=[first, second])
    assert view.prompt == "What is blue?"
    assert {view.answer_a, view.answer_b} == {"[1] you asked 'What is blue?'", "[2] you asked 'What is blue?'"}
    assert len(server.requests) == 2  # really answered over HTTP, on demand
    reveal = battles.vote(store, view.token, "carol", "A")
    expected_left = "Pane One" if view.answer_a.startswith("[1]") else "Pane Two"
    assert reveal.model_a == expected_left
    assert store_mod.get_store().query_rows("SELECT source FROM battles") == [("voter",)]
    # random pair of registered models when none are given
    assert battles.battle_for_prompt(store, "Again?", "dave").prompt == "Again?"
    with pytest.raises(battles.VoteError, match="Type a prompt"):
        battles.battle_for_prompt(store, "  ", "carol", model_ids=[first, second])
    server.fail_marker = "BREAK"
    with pytest.raises(battles.VoteError, match="could not answer") as err:
        battles.battle_for_prompt(store, "BREAK please", "carol", model_ids=[first, second])
    assert "Pane" not in str(err.value) and "srv" not in str(err.value)
    battles.prompt_limiter.per_minute = 2  # carol has asked twice this minute
    with pytest.raises(battles.RateLimited, match="own prompts a minute"):
        battles.battle_for_prompt(store, "One more?", "carol", model_ids=[first, second])


def test_pregenerate_through_models_generate(fake_llm, store):
    models = pytest.importorskip("ftassist.arena.models", reason="models.py (other helper) not there yet")
    fake_llm.models = list(fake_llm.models) + ["g-1", "g-2", "g-3"]
    fake_llm.answers = {"g-3": lambda m: "As an OpenAI model, " + m[-1]["content"]}
    fake_llm.fail_marker = "BROKEN"
    ids = [models.add_model(store, "openai_compatible", f"Gen {i}", {"base_url": fake_llm.base_url, "model": f"g-{i}",
                                                              "max_retries": 0}) for i in (1, 2, 3)]
    prompts = [{"prompt": "Name a fruit", "reference": "Apple"}, "Name a tree", "BROKEN prompt"]
    result = battles.pregenerate(store, prompts, ids, sampling={"temperature": 0.0, "max_new_tokens": 16})
    # 3 pairs x 2 good prompts; the broken prompt fails for every model and makes no battle
    assert result["battles"] == 6 and result["flagged"] == 4
    assert len(result["errors"]) == 6 and {e["prompt"] for e in result["errors"]} == {2}
    rows = store_mod.get_store().query(
        "SELECT prompt, model_a, model_b, reference, sampling_json, flagged_reason FROM battles ORDER BY prompt")
    assert {r["prompt"] for r in rows} == {"Name a fruit", "Name a tree"}
    assert all(json.loads(r["sampling_json"])["temperature"] == 0.0 for r in rows)
    assert {r["reference"] for r in rows if r["prompt"] == "Name a fruit"} == {"Apple"}
    assert all((r["flagged_reason"] is not None) == ("gen-3" in (r["model_a"], r["model_b"])) for r in rows)
    with pytest.raises(ValueError, match="two different models"):
        battles.pregenerate(store, prompts, [ids[0], ids[0]])
