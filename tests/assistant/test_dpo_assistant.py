"""The assistant and preference tuning: it recommends DPO (or SFT, then DPO) from what the person says, proposes a
DPO run of the session (beta, the SFT run to go on from) and the arena's train-on-votes, and runs each only on
Confirm, as the Train tab and the Leaderboard would: with the scripted LLM stand-in and without a key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from standins import OpenAIStandIn

from ftassist.arena import battles
from ftassist.assistant import chat, intents, tools
from ftassist.data.check import check_path
from ftassist.usecases import training
from ftassist.usecases.context import Context
from ftassist.usecases.session import Dataset, Session
from tests.train.conftest import no_stray_workers  # noqa: F401 - the fixture: offline, workers stopped at the end
from tests.train.job_waiting import wait_for

KEY = "k-dpo-0123456789"


def _pairs_file(folder: Path, n: int = 16) -> Path:
    path = folder / "pairs.jsonl"
    path.write_text("".join(json.dumps({
        "prompt": [{"role": "user", "content": f"Tell me about fact {i}."}],
        "chosen": [{"role": "assistant", "content": f"Fact {i} is true. Cheers"}],
        "rejected": [{"role": "assistant", "content": f"Fact {i} is true. whatever"}]}) + "\n" for i in range(n)),
        encoding="utf-8")
    return path


def _chats_file(folder: Path, n: int = 16) -> Path:
    path = folder / "chats.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is fact number {i}?"},
                                                     {"role": "assistant", "content": f"Fact {i} is true."}]}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


def _checked(path: Path) -> Session:
    return Session().checked(Dataset(path=str(path), report=check_path(path).to_dict()))


def _scripted(*steps) -> OpenAIStandIn:
    return OpenAIStandIn(script=list(steps)).start()


def _finished(ctx: Context, run_id: str) -> training.RunDetails:
    run = wait_for(lambda: (r := training.show_run(ctx, run_id)).status in training.FINAL_STATUSES and r,
                   timeout=240, what=f"run {run_id} to end")
    assert run.status == "succeeded", (run.error, run.log_tail)
    return run


def test_the_tools_take_the_objective_and_train_on_votes_waits_for_confirm():
    offered = tools.offered()
    assert offered["train_on_votes"].confirm and offered["start_run_from_session"].confirm
    for name in ("plan_run", "start_run_from_session"):
        parameters = tools.schema(offered[name])["function"]["parameters"]["properties"]
        assert parameters["objective"]["enum"] == ["sft", "dpo"] and {"dpo_beta", "start_from"} <= set(parameters)
    advise = tools.schema(offered["advise_approach"])["function"]["parameters"]["properties"]
    assert {"model_does_task", "has_preference_data"} <= set(advise)


def test_the_assistant_recommends_dpo_or_sft_then_dpo(ctx):
    reply = chat.respond(ctx, "LoRA or QLoRA? We have preference pairs and the model already does the task", [],
                         Session())
    result = reply.tool_calls[0]["result"]
    assert result["answers_used"]["has_preference_data"] and result["answers_used"]["model_does_task"]
    assert (result["objective"], result["then_objective"]) == ("dpo", None)
    assert "DPO preference tuning" in reply.text
    reply = chat.respond(ctx, "Should I fine-tune? we have preference pairs, a style to teach, 800 examples", [],
                         Session())
    result = reply.tool_calls[0]["result"]
    assert (result["objective"], result["then_objective"]) == ("sft", "dpo")
    assert "(SFT, then DPO preference tuning)" in reply.text

    # With the LLM: the model passes what the person said; the answer rests on the tool's objective.
    server = _scripted({"tool_calls": [("advise_approach", {"has_preference_data": True, "model_does_task": True,
                                                            "style_or_format": True})]},
                       lambda body: {"content": "Objective: " + json.loads(
                           [m for m in body["messages"] if m["role"] == "tool"][-1]["content"])["objective"]})
    try:
        reply = chat.respond(ctx, "we have votes and it already works: how should we tune?", [], Session(),
                             api_key=KEY, base_url=server.base_url)
    finally:
        server.stop()
    assert reply.used_llm and reply.text == "Objective: dpo"


def test_the_llm_proposes_a_dpo_run_which_starts_only_on_confirm(ctx, tmp_path, no_stray_workers):  # noqa: F811
    session = _checked(_pairs_file(tmp_path))
    server = _scripted({"tool_calls": [("start_run_from_session", {"objective": "dpo", "dpo_beta": 0.2,
                                                                   "base_model": "tiny-random", "max_steps": 2})]},
                       {"content": "I can start a DPO run on your pairs: press Confirm."})
    try:
        reply = chat.respond(ctx, "train it with DPO, beta 0.2, two steps", [], session, api_key=KEY,
                             base_url=server.base_url)
    finally:
        server.stop()
    pending = reply.session.pending_action
    assert pending["use_case"] == "start_run_from_session" and pending["arguments"]["objective"] == "dpo"
    assert training.list_runs(ctx) == []  # nothing started yet
    text, after = chat.confirm(ctx, reply.session)
    assert text.startswith("Done") and after.run_id
    run = _finished(ctx, after.run_id)
    assert (run.objective, run.spec["dpo_beta"], run.spec["train_file"]) == ("dpo", 0.2, session.dataset.path)
    assert run.preference["rewards/margins"] is not None


def test_without_a_key_dpo_from_the_sft_run_is_proposed_with_its_plan(ctx, tmp_path, no_stray_workers):  # noqa: F811
    """SFT, then DPO: "start DPO training from run X" proposes the DPO run going on from that run; yes starts it."""
    chats = _chats_file(tmp_path)
    sft = training.start_run(ctx, {"train_file": str(chats), "max_steps": 2})
    sft_run = _finished(ctx, sft.run_id)
    session = _checked(_pairs_file(tmp_path))
    r = intents.answer(ctx, f"start DPO training from run {sft.run_id} with beta 0.3, 2 steps", session)
    pending = r.pending
    assert pending["use_case"] == "start_run_from_session"
    assert pending["arguments"] == {"objective": "dpo", "dpo_beta": 0.3, "start_from": sft.run_id, "max_steps": 2}
    assert pending["summary"].startswith("Start a training run: DPO (beta 0.3) with LORA on tiny-random")
    assert f"going on from run {sft.run_id}" in pending["summary"]
    yes = chat.respond(ctx, "yes", [], r.session)
    assert yes.intent == "confirm" and yes.session.run_id != sft.run_id
    dpo = _finished(ctx, yes.session.run_id)
    assert dpo.objective == "dpo" and dpo.spec["start_from"] == sft_run.output_dir


def _vote(store, battle_id: str, voter: str, winner: str) -> None:
    model_a, model_b = store.query_rows("SELECT model_a, model_b FROM battles WHERE id = ?", [battle_id])[0]
    store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner) VALUES (?, ?, ?, ?, ?, ?)",
                  [f"{battle_id}-{voter}", battle_id, voter, model_a, model_b, winner])


@pytest.fixture
def voted_model(ctx, tmp_path, no_stray_workers):  # noqa: F811
    """A real tiny-random SFT run registered in the arena as "Tuned", with 8 decisive votes against a base."""
    from ftassist.arena import models as arena_models
    from ftassist.usecases import arena as arena_cases

    sft = _finished(ctx, training.start_run(ctx, {"train_file": str(_chats_file(tmp_path)), "max_steps": 2}).run_id)
    tuned = arena_cases.register_run_model(ctx, sft.id, "Tuned").id
    base = arena_models.add_model(ctx.store, "hf", "Base", {"model": str(Path(sft.run_dir) / "base_model")})
    for i in range(8):
        battle = battles.add_battle(ctx.store, f"What is fact number {i}?", tuned, base, f"Fact {i} is true.",
                                    f"Fact {i}? No idea.")
        _vote(ctx.store, battle, "u1", "model_a")
    return tuned


def test_train_on_votes_is_proposed_and_runs_on_confirm(ctx, voted_model):
    session = Session().registered_model(voted_model)
    # Without a key: the model the person registered last; too few pairs for the minimum asked starts nothing.
    server = _scripted({"tool_calls": [("train_on_votes", {"model": "Tuned", "min_votes": 50})]},
                       {"content": "I can train Tuned on its votes: press Confirm."})
    try:
        reply = chat.respond(ctx, "train Tuned on its votes", [], session, api_key=KEY, base_url=server.base_url)
    finally:
        server.stop()
    assert reply.session.pending_action["use_case"] == "train_on_votes"
    text, _ = chat.confirm(ctx, reply.session)
    assert "Not started: 8 usable preference pair(s)" in text and "at least 50" in text
    assert training.list_runs(ctx, limit=10)[0].objective == "sft"  # only the parent's run

    r = intents.answer(ctx, "train my model on its votes with at least 5 pairs, 2 steps", session)
    assert r.intent == "action_votes"
    assert r.pending["arguments"] == {"model": voted_model, "max_steps": 2, "min_votes": 5}
    yes = chat.respond(ctx, "yes", [], r.session)
    assert yes.intent == "confirm" and "trains Tuned on 8 preference pairs (DPO, beta 0.1)" in yes.text
    runs = training.list_runs(ctx, limit=10)
    assert runs[0].objective == "dpo"
    dpo = _finished(ctx, runs[0].id)
    assert dpo.spec["start_from"].endswith("model") and dpo.spec["objective"] == "dpo"


def test_without_a_registered_model_train_on_votes_asks_which(ctx):
    r = intents.answer(ctx, "train it on the votes", Session())
    assert r.intent == "action_votes" and r.pending is None and "Which arena model" in r.text
