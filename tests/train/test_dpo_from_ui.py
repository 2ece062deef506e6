"""DPO from the steps a person walks: the Estimate option's objective reaches the Train form (with beta and the
run to start from), the form starts a real DPO run from a finished SFT run picked in its list, and a Together or
OpenAI run started from an ftassist run id goes on from the model that run made there."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from standins.openai_server import TRAIN_KEY
from standins.together_server import BASE_MODEL, TOGETHER_KEY

from ftassist.data.check import check_path
from ftassist.store import get_store
from ftassist.ui import train as train_tab
from ftassist.usecases import planning, training
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Dataset, Session
from tests.train.conftest import make_chat_rows, write_jsonl
from tests.train.job_waiting import wait_for
from tests.train.test_dpo import preference_rows


def _finished(ctx: Context, run_id: str) -> training.RunDetails:
    run = wait_for(lambda: (r := training.show_run(ctx, run_id)).status in training.FINAL_STATUSES and r,
                   timeout=240, what=f"run {run_id} to end")
    assert run.status == "succeeded", (run.error, run.log_tail)
    return run


def _checked(path: Path) -> Session:
    return Session().checked(Dataset(path=str(path), report=check_path(path).to_dict()))


def _dpo_option(ctx: Context, session: Session) -> dict:
    """The Estimate step's recommended LoRA row for this session (DPO: its data are pairs), made a tiny-random run
    here, as the sample's option is."""
    result = planning.estimate_options(ctx, session, options={
        "base_models": ["HuggingFaceTB/SmolLM2-135M"], "methods": ["lora"], "gpus": ["T4"], "include_openai": False,
        "allow_network": False, "local_gpus": []})
    assert result.objective == "dpo"
    option = dataclasses.asdict(next(r for r in result.table.rows if r.kind == "self_hosted"))
    option.update(model="tiny-random", id="lora:tiny-random:cpu", epochs=1)
    return option


def _insert_run(run_id: str, backend: str, status: str, output_model: str | None, base_model: str,
                external_id: str | None = None) -> None:
    get_store().execute(
        "INSERT INTO jobs (id, backend, base_model, method, status, run_dir, spec_json, output_model, external_id) "
        "VALUES (?, ?, ?, 'lora', ?, '/nonexistent', '{}', ?, ?)",
        [run_id, backend, base_model, status, output_model, external_id])


# -- the form's defaults -----------------------------------------------------------------------------------
def test_the_train_form_takes_the_objective_from_the_option_and_the_data(tmp_path, ftassist_home):
    ctx = Context.open()
    pairs = _checked(write_jsonl(tmp_path / "pairs.jsonl", preference_rows(12, 0)))
    chats = _checked(write_jsonl(tmp_path / "chats.jsonl", make_chat_rows(12)))

    # no option: the data decide
    assert training.training_defaults(ctx, pairs).objective == "dpo"
    assert training.training_defaults(ctx, chats).objective == "sft"
    # a DPO option from the Estimate step: DPO, with its beta
    option = _dpo_option(ctx, pairs)
    defaults = training.training_defaults(ctx, pairs.chose(option))
    assert (defaults.objective, defaults.dpo_beta, defaults.start_from, defaults.objective_warning) == \
        ("dpo", 0.1, "", "")
    assert (defaults.backend, defaults.base_model, defaults.method) == ("local", "tiny-random", "lora")
    # an SFT option kept while the data are pairs: the option says SFT, and the form says what does not fit
    sft_option = {**option, "objective": "sft"}
    mismatch = training.training_defaults(ctx, pairs.chose(sft_option))
    assert mismatch.objective == "sft" and "holds preference pairs" in mismatch.objective_warning
    gate = train_tab.prefill_handler(ctx, pairs.chose(sft_option), None)[0]
    assert "⚠️ The chosen Estimate option trains SFT" in gate

    # the plan the assistant describes and the Train tab starts: DPO with its beta, nothing started
    plan = training.plan_run(ctx, pairs.chose(option), max_steps=2, dpo_beta=0.3)
    assert (plan.spec["objective"], plan.spec["dpo_beta"], plan.spec["train_file"]) == \
        ("dpo", 0.3, str(tmp_path / "pairs.jsonl"))
    assert "start_from" not in plan.spec
    assert plan.summary.startswith("Start a training run: DPO (beta 0.3) with LORA on tiny-random")
    with pytest.raises(UseCaseError, match="Unknown objective 'ppo'"):
        training.plan_run(ctx, pairs, objective="ppo")


def test_sft_then_dpo_from_the_train_tab(tmp_path, ftassist_home, no_stray_workers):
    """SFT on chats from the form; then, with pairs checked and the DPO option chosen, the form comes prefilled
    with DPO and the SFT run to start from (also in its run list), and Start trains DPO from that adapter."""
    ctx = Context.open()
    chats = write_jsonl(tmp_path / "chats.jsonl", [{"messages": r["prompt"] + r["rejected"]}
                                                   for r in preference_rows(24, 0)])
    form = dict(backend="local", base_model="tiny-random", method="lora", epochs=1, lr=None, lora_r=None,
                lora_alpha=None, max_steps=2, train_file=str(chats), valid_file="", openai_model="", suffix="",
                provider="openai", base_url="", azure_endpoint="", api_version="", api_key="")
    session, _, _ = train_tab.start_handler(ctx, *form.values(), _checked(chats), None, "sft", None, None)
    sft = _finished(ctx, session.run_id)
    assert sft.objective == "sft"
    assert (f"{sft.id} · sft · local · tiny-random", sft.id) in train_tab.start_choices(ctx)

    pairs_file = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(24, 0))
    session = _checked(pairs_file).selected_run(sft.id)  # the SFT run is still the session's run
    session = session.chose(_dpo_option(ctx, session))
    gate, key, *values = train_tab.prefill_handler(ctx, session, None)
    prefilled = {name: update.get("value") for name, update in zip(train_tab.PREFILLED, values)}
    assert (prefilled["objective"], prefilled["dpo_beta"], prefilled["start_from"]) == ("dpo", 0.1, sft.id)
    assert f"going on from run `{sft.id}`" in gate
    assert (f"{sft.id} · sft · local · tiny-random", sft.id) in values[train_tab.PREFILLED.index("start_from")][
        "choices"]
    form.update(train_file=prefilled["train_file"], max_steps=2, epochs=prefilled["num_epochs"])
    session, message, _ = train_tab.start_handler(ctx, *form.values(), session, None, prefilled["objective"], 0.2,
                                                  prefilled["start_from"])
    dpo = _finished(ctx, session.run_id)
    assert dpo.objective == "dpo" and dpo.spec["dpo_beta"] == 0.2
    assert dpo.spec["start_from"] == sft.output_dir and dpo.spec["base_model"] == "tiny-random"
    assert dpo.preference["rewards/accuracies"] is not None  # the Train tab's DPO figures
    # the form's next prefill does not offer the DPO run itself as an SFT start
    assert training.training_defaults(ctx, session).start_from == ""


# -- hosted: an ftassist run id becomes the provider's model ------------------------------------------------
def test_a_together_dpo_run_goes_on_from_the_model_an_ftassist_sft_run_made(together_server, tmp_path, monkeypatch,
                                                                            ftassist_home, no_stray_workers):
    monkeypatch.setenv("TOGETHER_BASE_URL", together_server.url)
    monkeypatch.setenv("FTASSIST_TOGETHER_POLL_INTERVAL", "0.01")
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    ctx = Context.open()
    chats = write_jsonl(tmp_path / "chats.jsonl", make_chat_rows(6))
    sft = training.start_run(ctx, {"backend": "together", "base_model": BASE_MODEL, "train_file": str(chats),
                                   "num_epochs": 1}, api_key=TOGETHER_KEY)
    sft_run = _finished(ctx, sft.run_id)
    assert sft_run.output_model and not sft_run.output_model.startswith("ft-")
    assert (f"{sft.run_id} · sft · together · {BASE_MODEL}", sft.run_id) in train_tab.start_choices(ctx)

    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(9, 0))
    spec = train_tab.build_spec("together", BASE_MODEL, "lora", 1, None, None, None, None, str(pairs), "", "", "",
                                "openai", "", "", "", None, "dpo", 0.25, sft.run_id)
    dpo = training.start_run(ctx, spec, api_key=TOGETHER_KEY)
    dpo_run = _finished(ctx, dpo.run_id)
    body = together_server.calls("POST", "/fine-tunes")[-1]["json"]
    assert body["from_checkpoint"] == sft_run.output_model  # the model the SFT run made, not our run id
    assert (body["training_method"]["method"], body["training_method"]["dpo_beta"]) == ("dpo", 0.25)
    assert dpo_run.spec["start_from"] == sft_run.output_model and dpo_run.objective == "dpo"


def test_an_openai_dpo_run_goes_on_from_an_ftassist_runs_ft_model(fake_openai, tmp_path, ftassist_home,
                                                                 no_stray_workers):
    ctx = Context.open()
    sft_model = "ft:gpt-4.1-mini-2025-04-14:org-fake:support:abc12345"
    _insert_run("openai-sft", "openai", "succeeded", sft_model, "gpt-4.1-mini-2025-04-14", "ftjob-1")
    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(9, 0))
    spec = {"backend": "openai", "objective": "dpo", "dpo_beta": 0.3, "train_file": str(pairs),
            "start_from": "openai-sft",
            "openai": {"model": "gpt-4.1-mini-2025-04-14", "provider": "custom", "base_url": fake_openai.base_url,
                       "poll_interval": 0.01}}
    run = _finished(ctx, training.start_run(ctx, spec, api_key=TRAIN_KEY).run_id)
    (create,) = fake_openai.calls("POST", "/fine_tuning/jobs")
    assert create["json"]["model"] == sft_model and create["json"]["method"]["type"] == "dpo"
    assert run.spec["start_from"] == sft_model


def test_a_hosted_start_that_cannot_be_continued_there_is_refused(tmp_path, ftassist_home):
    ctx = Context.open()
    pairs = str(write_jsonl(tmp_path / "pairs.jsonl", preference_rows(4, 0)))
    _insert_run("local-sft", "local", "succeeded", "/runs/local-sft/model", "tiny-random")
    _insert_run("together-running", "together", "running", None, BASE_MODEL, "ft-123")
    _insert_run("together-done", "together", "succeeded", "acct/Meta-Llama-sft-1", BASE_MODEL, "ft-456")
    together = {"backend": "together", "base_model": BASE_MODEL, "objective": "dpo", "train_file": pairs}
    with pytest.raises(UseCaseError, match="Run local-sft trained on this machine, and a run on Together AI can only "
                                           "go on from a model Together AI made"):
        training.start_run(ctx, {**together, "start_from": "local-sft"})
    with pytest.raises(UseCaseError, match="Run together-running is running: start from a run that finished"):
        training.start_run(ctx, {**together, "start_from": "together-running"})
    with pytest.raises(UseCaseError, match="Run together-done trained on Together AI, and a run on OpenAI"):
        training.start_run(ctx, {"backend": "openai", "objective": "dpo", "train_file": pairs,
                                 "start_from": "together-done", "openai": {"model": "gpt-4.1-mini-2025-04-14"}})
    # a Together model name or job id given as such goes through as given (the spec check judges it)
    spec = json.loads(json.dumps({**together, "start_from": "ft-789"}))
    from ftassist.train.spec import JobSpec

    job_spec = JobSpec.from_dict(spec)
    training._resolve_hosted_start(ctx, job_spec)
    assert job_spec.start_from == "ft-789"
