"""The preference loop: votes become DPO pairs by stated rules, too few pairs start nothing and say why,
and enough pairs train the voted model's next version, which joins the arena with battles against it.

The last test is the whole loop on tiny-random, through the CLI and the Leaderboard tab's handlers: a real
SFT run, its model registered, votes stored, `ftassist arena train-on-votes`, a real DPO run, and the app's
`follow_runs` registering the new model and generating its battles against its parent.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import gradio as gr
import pytest

from ftassist.arena import battles, export
from ftassist.cli import main
from ftassist.train.spec import JobSpec
from ftassist.usecases import preference_loop
from ftassist.usecases.context import NotFound, UseCaseError


def _vote(store, battle_id: str, voter: str, winner: str, flagged: str | None = None) -> None:
    model_a, model_b = store.query_rows("SELECT model_a, model_b FROM battles WHERE id = ?", [battle_id])[0]
    store.execute(
        "INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, flagged_reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [f"{battle_id}-{voter}", battle_id, voter, model_a, model_b, winner, flagged])


def _flag_voter(store, voter: str) -> None:
    store.execute("INSERT INTO voter_flags (voter, reason) VALUES (?, 'agrees with the majority on 1/20 battles')",
                  [voter])


def test_pairs_follow_the_stated_rules(store):
    """Ties and both-bad give no pair; flagged votes, voters and battles are left out; the majority decides."""
    won_a = battles.add_battle(store, "Capital of France?", "tuned", "base", "Paris.", "Lyon.")
    won_b = battles.add_battle(store, "2+2?", "base", "tuned", "5", "4")
    tie = battles.add_battle(store, "Hi", "tuned", "base", "Hello", "Hey")
    both_bad = battles.add_battle(store, "Meaning of life?", "tuned", "base", "Blue.", "Seven.")
    split = battles.add_battle(store, "Colour?", "tuned", "base", "Red", "Blue")
    leaky = battles.add_battle(store, "Who are you?", "tuned", "base", "I am Claude", "A helper")
    same = battles.add_battle(store, "Say ok", "tuned", "base", "ok", "ok")
    other = battles.add_battle(store, "Unrelated?", "base", "third", "Yes.", "No.")
    _vote(store, won_a, "u1", "model_a")
    _vote(store, won_a, "u2", "model_a")
    _vote(store, won_a, "u3", "model_b")  # outvoted
    _vote(store, won_a, "cheat", "model_b")  # a flagged voter: left out
    _vote(store, won_a, "fast", "model_b", flagged="too fast (2 s)")
    _vote(store, won_b, "u1", "model_b")
    _vote(store, tie, "u1", "tie")
    _vote(store, both_bad, "u1", "tie (bothbad)")
    _vote(store, split, "u1", "model_a")
    _vote(store, split, "u2", "model_b")
    _vote(store, leaky, "u1", "model_a")
    _vote(store, same, "u1", "model_a")
    _vote(store, other, "u1", "model_a")  # not a battle of "tuned"
    store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, source) VALUES "
                  "('imp', 'import-1', 'u9', 'tuned', 'base', 'model_a', 'import')")
    _flag_voter(store, "cheat")

    made = export.vote_pairs(store, "tuned", system_prompt="Be brief.")
    assert made.votes == 13 and made.usable == 3 and len(made.pairs) == 2
    assert made.dropped == {"outvoted": 1, "flagged_voter": 1, "flagged_vote": 1, "tie": 1, "both_bad": 1,
                            "split": 2, "flagged_battle": 1, "same_answer": 1, "imported": 1}
    pairs = {p["prompt"][-1]["content"]: p for p in made.pairs}
    assert pairs["Capital of France?"]["chosen"] == [{"role": "assistant", "content": "Paris."}]
    assert pairs["Capital of France?"]["rejected"] == [{"role": "assistant", "content": "Lyon."}]
    assert pairs["2+2?"]["chosen"][0]["content"] == "4"
    assert pairs["2+2?"]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert any("2 votes on battles evenly split" in line for line in made.dropped_text())
    assert len(export.vote_pairs(store).pairs) == 3  # every model's battles: "other" too
    assert export.dpo_pairs(store) == export.vote_pairs(store).pairs  # the export follows the same rules


@pytest.fixture
def voted_parent(store, tiny_adapter_dir, tmp_path):
    """A fine-tuned arena model registered from a local run's folder (its adapter), and a base to meet."""
    run = tmp_path / "runs" / "parent-run"
    run.mkdir(parents=True)
    JobSpec(base_model="unused", train_file="x", output_dir=str(tiny_adapter_dir), max_steps=1).save(run)
    config = {"base_model": "unused-base", "adapter_dir": str(tiny_adapter_dir), "run_dir": str(run)}
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES "
                  "('tuned', 'hf_adapter', 'Tuned', ?), ('base', 'hf', 'Base', '{}'),"
                  " ('api', 'openai', 'Api', '{\"model\": \"gpt-4o-mini\"}')", [json.dumps(config)])
    return "tuned"


def test_too_few_pairs_start_nothing_and_say_why(ctx, store, voted_parent):
    for i in range(6):
        battle = battles.add_battle(store, f"Question {i}?", "tuned", "base", f"Answer {i}.", f"Other {i}.")
        _vote(store, battle, "u1", "model_a" if i < 3 else "tie")
    result = preference_loop.train_on_votes(ctx, "Tuned", min_votes=5)
    assert not result.started and result.run_id is None
    assert (result.votes, result.usable_votes, result.pairs, result.dropped) == (6, 3, 3, {"tie": 3})
    assert "3 usable preference pair(s)" in result.message and "at least 5" in result.message
    assert "3 ties" in result.message
    assert store.query_rows("SELECT count(*) FROM preference_loops")[0][0] == 0

    with pytest.raises(NotFound, match="No model 'nobody'"):
        preference_loop.train_on_votes(ctx, "nobody")
    with pytest.raises(UseCaseError, match="not fine-tuned by a run here"):
        preference_loop.train_on_votes(ctx, "Base")
    with pytest.raises(UseCaseError, match="API model"):
        preference_loop.train_on_votes(ctx, "Api")


def test_the_leaderboard_tab_says_why_it_did_not_start(ctx, store, voted_parent):
    from ftassist.ui import leaderboard

    battle = battles.add_battle(store, "Q?", "tuned", "base", "Good.", "Bad.")
    _vote(store, battle, "u1", "tie (bothbad)")
    text, loops = leaderboard.train_on_votes(ctx, "tuned", 20)
    assert "Not started: 0 usable preference pair(s)" in text and "1 both bad" in text
    assert "Ties and 'both bad' give no pair" in text and "No run has trained" in loops
    with pytest.raises(gr.Error, match="Pick the fine-tuned model"):
        leaderboard.train_on_votes(ctx, None, 20)
    assert leaderboard.tuned_choices(ctx)["choices"] == [("Tuned", "tuned")]


# -- the whole loop on tiny-random ---------------------------------------------------------------------------
PROMPTS = [f"What is fact number {i}?" for i in range(24)]


@pytest.fixture
def workers(monkeypatch):
    """Offline, one thread per worker; the followers stopped and any worker left killed at the end."""
    from ftassist.train import jobs

    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("OMP_NUM_THREADS", "1"),
                        ("CUDA_VISIBLE_DEVICES", "")):
        monkeypatch.setenv(name, value)
    yield
    preference_loop.stop_following()
    jobs.stop_ingest_loop()
    try:
        from ftassist import store

        pids = [pid for (pid,) in store.get_store().query_rows("SELECT pid FROM jobs WHERE status = 'running'")]
    except Exception:  # noqa: BLE001 - the store may be gone already
        pids = []
    for pid in pids:
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
    jobs.forget_children()


def _wait_for(predicate, timeout: float, what: str):
    from ftassist import store
    from ftassist.train import jobs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {jobs.list_jobs(store.get_store())}")


def _finished(ctx, run_id: str) -> dict:
    from ftassist.train import jobs

    def done():
        jobs.tick(ctx.store)
        row = jobs.get_job(ctx.store, run_id)
        return row if row["status"] in jobs.FINAL_STATUSES else None

    row = _wait_for(done, 300, f"run {run_id}")
    log = (Path(row["run_dir"]) / "worker.log").read_text(errors="replace")[-3000:]
    assert row["status"] == "succeeded", f"{row['status']}: {row.get('error')}\n{log}"
    return row


def test_votes_train_the_next_model_which_meets_its_parent(ctx, store, workers, tmp_path, capsys):
    from ftassist.arena import models as arena_models
    from ftassist.ui import leaderboard
    from ftassist.usecases import arena as arena_cases
    from ftassist.usecases import training

    # 1. A tiny-random SFT run, its model in the arena next to its base.
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p},
                                                     {"role": "assistant", "content": f"Fact {i} is true."}]}) + "\n"
                            for i, p in enumerate(PROMPTS)))
    sft = training.start_run(ctx, {"base_model": "tiny-random", "train_file": str(data), "max_steps": 2,
                                   "per_device_batch_size": 4, "logging_steps": 1})
    parent_run = _finished(ctx, sft.run_id)
    parent = arena_cases.register_run_model(ctx, sft.run_id, "Tuned").id
    base = arena_models.add_model(store, "hf", "Base", {"model": str(Path(parent_run["run_dir"]) / "base_model")})

    # 2. Votes on battles between them, stored directly: 22 decisive, and some that make no pair.
    for i, prompt in enumerate(PROMPTS):
        battle = battles.add_battle(store, prompt, parent, base, f"Fact {i} is true.", f"Fact {i} is false.")
        _vote(store, battle, "u1", "tie" if i == 22 else "tie (bothbad)" if i == 23 else "model_a")
    _vote(store, battle, "cheat", "model_b")  # a flagged voter's vote on the last battle
    _flag_voter(store, "cheat")

    # 3. Too strict a minimum: nothing starts, and the CLI says why (exit 1, the counts in JSON).
    assert main(["arena", "train-on-votes", "--from", "Tuned", "--min-votes", "30", "--json"]) == 1
    refused = json.loads(capsys.readouterr().out)
    assert not refused["started"] and (refused["votes"], refused["pairs"]) == (25, 22)
    assert refused["dropped"] == {"tie": 1, "both_bad": 1, "flagged_voter": 1}

    # 4. Train on the votes: a DPO run from the parent's own adapter.
    assert main(["arena", "train-on-votes", "--from", "Tuned", "--max-steps", "2", "--json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["started"] and started["pairs"] == 22 and started["run_status"] in ("running", "queued")
    spec = json.loads((Path(store.query_rows("SELECT run_dir FROM jobs WHERE id = ?", [started["run_id"]])[0][0])
                       / "spec.json").read_text())
    assert spec["objective"] == "dpo" and spec["backend"] == "local"
    assert Path(spec["start_from"]) == Path(parent_run["run_dir"]) / "model"
    assert spec["base_model"] == "tiny-random"  # the parent's base (the worker copies the parent's tiny model)
    assert main(["arena", "train-on-votes", "--from", "Tuned"]) == 2  # one loop per model at a time
    assert "already training on its votes" in capsys.readouterr().err

    # 5. The app follows the run; when it ends its model is registered and battles against the parent made.
    _finished(ctx, started["run_id"])
    training.follow_runs(ctx)
    training.follow_runs(ctx)  # idempotent: still one follower

    def loop_done():
        loops = preference_loop.preference_loops(ctx)
        return loops[0] if loops and loops[0].status in ("done", "failed") else None

    loop = _wait_for(loop_done, 300, "the loop to finish")
    assert loop.status == "done", loop.message
    child = loop.child_model
    assert child and child != parent and loop.child_name == f"Tuned + votes ({started['run_id']})"
    registered = arena_models.get_model(store, child)
    assert Path(registered["config"]["run_dir"]).name == started["run_id"]
    pairs = store.query_rows("SELECT prompt FROM battles WHERE (model_a = ? AND model_b = ?) OR (model_a = ? AND "
                             "model_b = ?) ORDER BY prompt", [parent, child, child, parent])
    assert sorted(p for (p,) in pairs) == sorted(PROMPTS)  # every prompt the parent was voted on, once
    assert loop.battles == len(PROMPTS) and loop.head_to_head is None  # no vote on them yet

    again = preference_loop.finish_preference_loops(ctx)  # nothing left to do: no new battle, no new model
    assert again[0].status == "done" and again[0].battles == len(PROMPTS)
    assert len(arena_models.list_models(store)) == 3

    # 6. Votes on the new battles: the leaderboard and the loop say whether the votes made it better.
    for i, (battle_id, model_a) in enumerate(store.query_rows(
            "SELECT id, model_a FROM battles WHERE ? IN (model_a, model_b) ORDER BY prompt", [child])):
        child_won = i % 6 != 0
        _vote(store, battle_id, "judge", "model_a" if (model_a == child) == child_won else "model_b")
    loops_text = leaderboard.refresh_loops(ctx)
    assert f"new model **Tuned + votes ({started['run_id']})**" in loops_text
    assert "wins **83%**" in loops_text and "the votes made it better" in loops_text
    headline, table, _, _ = leaderboard.refresh(ctx, 100)
    assert set(table["model"]) == {"Tuned", "Base", f"Tuned + votes ({started['run_id']})"}
    assert table["style-controlled rating"].ne("").all()  # every vote here has its battle's answers
    assert "Style control" in headline
    assert main(["arena", "loops"]) == 0
    assert "wins 83%" in capsys.readouterr().out
