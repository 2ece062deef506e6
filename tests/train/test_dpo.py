"""DPO on the local worker: preference pairs, a measured effect on held-out pairs, SFT then DPO with the SFT
model as reference, the events and the Train tab's points, the CLI's final line, and the refusals."""

from __future__ import annotations

import json
import re
import random
from pathlib import Path

import pytest

from ftassist.data.preference_pairs import PairError, file_kind, load_pairs, read_pairs
from ftassist.train.events import read_events
from ftassist.train.spec import JobSpec
from tests.train.conftest import make_chat_rows, run_worker, write_jsonl
from tests.train.job_waiting import wait_for

TOPICS = ["the sun", "water", "cats", "python", "paris", "music", "trees", "rain", "bread", "chess", "snow", "moon"]
FILLERS = ["maybe", "perhaps", "whatever", "dunno", "sure", "fine"]
SIGN_OFF = "Cheers"  # every chosen answer ends with it, no rejected one does: the preference to learn


def preference_rows(n: int, seed: int, offset: int = 0) -> list[dict]:
    """Pairs whose answers share their body; the chosen one ends with SIGN_OFF, the rejected one with a filler."""
    rng = random.Random(seed)
    rows = []
    for i in range(offset, offset + n):
        topic = TOPICS[i % len(TOPICS)]
        body = f"Here is a fact about {topic} number {i}."
        rows.append({"prompt": [{"role": "user", "content": f"Tell me about {topic} ({i})."}],
                     "chosen": [{"role": "assistant", "content": f"{body} {SIGN_OFF}"}],
                     "rejected": [{"role": "assistant", "content": f"{body} {rng.choice(FILLERS)}"}]})
    return rows


@pytest.fixture
def pair_data(tmp_path) -> tuple[Path, Path, list[dict]]:
    """(train.jsonl: 48 pairs, valid.jsonl: 8, held-out pairs never trained or evaluated on)."""
    data = tmp_path / "pairs"
    data.mkdir()
    return (write_jsonl(data / "train.jsonl", preference_rows(48, 0)),
            write_jsonl(data / "valid.jsonl", preference_rows(8, 1, offset=100)),
            preference_rows(16, 2, offset=500))


def _events(run_dir: Path) -> list[dict]:
    return read_events(run_dir)[0]


def _log(run_dir: Path) -> str:
    return (run_dir / "worker.log").read_text(errors="replace")[-4000:]


def answer_logprob(model, tokenizer, prompt: list[dict], answer: list[dict]) -> float:
    """log p(answer | prompt) under `model`, the answer's tokens as the chat template renders them."""
    import torch

    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                               return_dict=True)["input_ids"]
    full_ids = tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"]
    assert full_ids[:len(prompt_ids)] == prompt_ids
    ids = torch.tensor([full_ids], device=model.device)
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
    targets = ids[0, len(prompt_ids):]
    return float(logps[0, len(prompt_ids) - 1:-1].gather(-1, targets[:, None]).sum())


def mean_margin(model, tokenizer, rows: list[dict]) -> float:
    """How much more likely the chosen answer is than the rejected one, in nats, averaged over `rows`."""
    model.eval()
    return sum(answer_logprob(model, tokenizer, r["prompt"], r["chosen"])
               - answer_logprob(model, tokenizer, r["prompt"], r["rejected"]) for r in rows) / len(rows)


# -- preference files ----------------------------------------------------------------------------------------
def test_the_worker_reads_every_format_the_data_step_accepts_and_refuses_as_it_does(tmp_path):
    """One reader: the worker's pairs are the Data step's (`data/preference_pairs.py` over `preferences.py`), and a
    line it leaves out carries the reason and fix the Data step's check gives that line."""
    from ftassist.data.check import check_path
    from ftassist.data.clean import clean_file

    canonical = {"prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
                 "rejected": [{"role": "assistant", "content": "Go away."}]}
    shapes = {
        "trl_conversational": canonical,
        "trl_plain": {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
        "trl_implicit": {"chosen": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}],
                         "rejected": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Go away."}]},
        "openai_dpo": {"input": {"messages": canonical["prompt"]}, "preferred_output": canonical["chosen"],
                       "non_preferred_output": canonical["rejected"]},
        "sharegpt": {"conversations": [{"from": "human", "value": "Hi?"}], "chosen": {"from": "gpt", "value": "Hello!"},
                     "rejected": {"from": "gpt", "value": "Go away."}},
    }
    for name, row in shapes.items():
        path = write_jsonl(tmp_path / f"{name}.jsonl", [row, row])
        read = load_pairs(path)
        assert (read.pairs, read.problems, file_kind(path)) == ([canonical, canonical], [], "pairs"), name
    sharegpt_array = tmp_path / "sharegpt.json"  # the Data step's ShareGPT export: a JSON array
    sharegpt_array.write_text(json.dumps([shapes["sharegpt"]] * 3), encoding="utf-8")
    assert load_pairs(sharegpt_array).pairs == [canonical] * 3 and file_kind(sharegpt_array) == "pairs"

    rows = [shapes["trl_plain"], "", "{oops",
            {"prompt": "x", "chosen": "a", "rejected": "a"},  # chosen = rejected: teaches nothing
            {"prompt": "Hi?", "chosen": {"role": "assistant", "content": "a"}, "rejected": "b"},  # neither style
            {"prompt": "x", "chosen": "", "rejected": "b"},  # an empty side
            {"messages": [{"role": "user", "content": "Hi?"}]},  # a chat among pairs
            {"prompt": "x", "chosen": "a"}]  # no rejected
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows),
                    encoding="utf-8")
    read = load_pairs(path)
    assert read.pairs == [canonical]
    assert [issue.line for issue in read.problems] == [3, 4, 5, 6, 7, 8]
    report = check_path(path)
    said = {(issue.line, issue.message, issue.hint) for issue in report.errors + report.warnings}
    for issue in read.problems:  # the very line, reason and fix the Data step's check gives
        assert (issue.line, issue.message, issue.hint) in said, issue
    codes = [issue.code for issue in read.problems]
    assert codes == ["invalid_json", "identical_pair", "non_string_field", "empty_pair_side", "mixed_formats",
                     "missing_field"]
    text = read.problem_text()
    assert text.startswith("line 3: malformed JSON") and "(fix: " in text and text.endswith("and 3 more")
    assert "neither text nor a list of messages" in read.problems[2].message
    assert read.hint == read.problems[0].hint
    assert file_kind(path) is None  # a broken line among the first: neither kind for sure
    with pytest.raises(PairError, match=r"line 3: malformed JSON") as refused:
        read_pairs(path)  # strict (hosted upload, the estimate): the first refused line stops it, with its fix
    assert refused.value.hint == read.problems[0].hint
    chats = write_jsonl(tmp_path / "chats.jsonl", make_chat_rows(4))
    assert file_kind(chats) == "chat" and load_pairs(chats).pairs == []

    pairs = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(10, 0) + preference_rows(2, 0))  # 2 repeated
    split = clean_file(pairs, tmp_path / "split", valid_fraction=0.2, seed=1)  # the Data step's split, by prompt
    assert (split.kind, split.n_train, split.n_valid, split.n_dropped_duplicates) == ("preference", 8, 2, 2)
    train_rows, valid_rows = load_pairs(split.train_path).pairs, load_pairs(split.valid_path).pairs
    assert sorted(r["prompt"][0]["content"] for r in train_rows + valid_rows) == sorted(
        r["prompt"][0]["content"] for r in preference_rows(10, 0))


# -- the worker ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_dpo_raises_the_held_out_margin_of_the_chosen_answers(tmp_path, pair_data):
    """A real effect: after a few DPO steps the model prefers answers ending like the chosen ones on pairs it never
    saw, more than the base model does; its output loads through the Arena's model loader."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftassist.arena.models import load_local, run_model_config

    train, valid, held_out = pair_data
    run_dir = tmp_path / "run"
    spec = JobSpec(train_file=str(train), valid_file=str(valid), output_dir=str(run_dir / "model"), objective="dpo",
                   per_device_batch_size=8, max_steps=8)
    assert spec.validate() == [] and spec.resolved_learning_rate == 5e-3  # tiny-random's DPO preset
    spec.save(run_dir)
    assert run_worker(run_dir) == 0, _log(run_dir)

    events = _events(run_dir)
    started = next(e for e in events if e["type"] == "started")
    assert (started["objective"], started["loss_on"], started["dpo_beta"]) == ("dpo", "preference", 0.1)
    assert started["reference"] == "the base with the adapter off" and started["num_examples"] == 48
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, 9))
    assert logs[0]["rewards/margins"] == 0 and logs[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = ref
    assert logs[-1]["rewards/margins"] > 0 and logs[-1]["rewards/accuracies"] > 0.5 and logs[-1]["loss"] < 0.69
    evals = [e for e in events if e["type"] == "eval"]
    assert evals and evals[-1]["eval_rewards/margins"] > 0 and evals[-1]["perplexity"] is None
    finished = events[-1]
    assert finished["type"] == "finished" and finished["rewards/margins"] == logs[-1]["rewards/margins"]
    assert finished["metrics"]["objective"] == "dpo" and finished["metrics"]["best_eval_perplexity"] is None

    kind, config = run_model_config(run_dir)
    assert kind == "hf_adapter" and config["base_model"] == str(run_dir / "base_model")
    trained = load_local(kind, config)
    base = AutoModelForCausalLM.from_pretrained(run_dir / "base_model")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "base_model")
    before, after = mean_margin(base, tokenizer, held_out), mean_margin(trained.model, trained.tokenizer, held_out)
    assert after > before + 0.3, (before, after)  # nats: the chosen ending became far more likely than before


@pytest.mark.slow
def test_full_dpo_uses_precomputed_reference_log_probs(tmp_path, pair_data):
    train, valid, _ = pair_data
    run_dir = tmp_path / "run"
    spec = JobSpec(train_file=str(train), valid_file=str(valid), output_dir=str(run_dir / "model"), objective="dpo",
                   method="full", per_device_batch_size=8, max_steps=3)
    assert spec.resolved_learning_rate == 1e-3
    spec.save(run_dir)
    assert run_worker(run_dir) == 0, _log(run_dir)
    events = _events(run_dir)
    started = next(e for e in events if e["type"] == "started")
    assert started["reference"].startswith("log-probabilities precomputed")
    logs = [e for e in events if e["type"] == "log"]
    assert logs[0]["rewards/margins"] == 0 and logs[-1]["rewards/margins"] > 0  # the reference stayed the start
    assert (run_dir / "model" / "config.json").is_file() and not (run_dir / "model" / "adapter_config.json").exists()


def test_qlora_dpo_is_refused_on_cpu(tmp_path, pair_data):
    from ftassist.train.worker import QLORA_HINT

    train, valid, _ = pair_data
    run_dir = tmp_path / "run"
    JobSpec(train_file=str(train), valid_file=str(valid), output_dir=str(run_dir / "model"), objective="dpo",
            method="qlora").save(run_dir)
    assert run_worker(run_dir, timeout=60) == 3, _log(run_dir)
    (event,) = _events(run_dir)
    assert event["type"] == "failed" and "CUDA" in event["reason"] and event["hint"] == QLORA_HINT
    assert not (run_dir / "model").exists()


@pytest.mark.slow
def test_dpo_trains_on_sharegpt_and_openai_pairs_and_names_the_lines_it_leaves_out(tmp_path, pair_data):
    """The worker takes the Data step's formats as they are: ShareGPT pairs (a JSON array) to train, OpenAI DPO to
    validate; a refused record is named with the Data step's reason, and a file with no pair fails with its fix."""
    from ftassist.data.preferences import write_pairs

    train, valid, _ = pair_data
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    sharegpt = tmp_path / "train.json"
    assert write_pairs(rows[:16], sharegpt, "sharegpt") == 16
    broken = json.loads(sharegpt.read_text())
    broken.insert(3, {**broken[3], "chosen": {"from": "gpt", "value": 5}})  # record 4: an answer that is no text
    sharegpt.write_text("[\n" + ",\n".join(json.dumps(row) for row in broken) + "\n]\n", encoding="utf-8")
    openai = tmp_path / "valid.jsonl"
    assert write_pairs([json.loads(line) for line in valid.read_text().splitlines()], openai, "openai_dpo") == 8
    run_dir = tmp_path / "run"
    JobSpec(train_file=str(sharegpt), valid_file=str(openai), output_dir=str(run_dir / "model"), objective="dpo",
            per_device_batch_size=8, max_steps=2).save(run_dir)
    assert run_worker(run_dir) == 0, _log(run_dir)
    events = _events(run_dir)
    started = next(e for e in events if e["type"] == "started")
    assert (started["num_examples"], started["num_valid_examples"]) == (16, 8)
    left_out = [e["text"] for e in events if e["type"] == "message" and "left out" in e.get("text", "")]
    assert left_out == ['left out 1 training lines that are not preference pairs: line 5: "chosen"\'s value is a '
                        "number, not text (fix: Give the answer as text in \"value\")"], left_out
    assert events[-1]["type"] == "finished"

    chats = write_jsonl(tmp_path / "chats.jsonl", make_chat_rows(3))
    run_dir = tmp_path / "refused"
    JobSpec(train_file=str(chats), output_dir=str(run_dir / "model"), objective="dpo").save(run_dir)
    assert run_worker(run_dir, timeout=60) != 0
    (failed,) = [e for e in _events(run_dir) if e["type"] == "failed"]
    assert (f"no usable preference pairs in {chats} (line 1: this record is in chat format, but the file holds "
            "preference pairs (fix: give every record a prompt with a chosen and a rejected answer, or split the "
            "file); line 2: this record is in chat format, but the file holds preference pairs; line 3: ") \
        in failed["reason"]
    assert failed["hint"] == "give every record a prompt with a chosen and a rejected answer, or split the file"


# -- SFT, then DPO, through the use cases ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.usefixtures("no_stray_workers")
def test_sft_then_dpo_starts_from_the_sft_adapter_and_keeps_it_as_reference(tmp_path, pair_data):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftassist.arena.models import load_local, run_model_config
    from ftassist.usecases import training
    from ftassist.usecases.context import Context

    ctx = Context.open()
    train, valid, held_out = pair_data
    # SFT on the rejected answers: the SFT model is far from the bare base on exactly these texts.
    chats = write_jsonl(tmp_path / "sft.jsonl", [{"messages": r["prompt"] + r["rejected"]}
                                                 for r in preference_rows(48, 0)])
    sft = training.start_run(ctx, {"train_file": str(chats), "max_steps": 4})
    sft_run = wait_for(lambda: (r := training.show_run(ctx, sft.run_id)).status in training.FINAL_STATUSES and r,
                       timeout=180, what="the SFT run")
    assert sft_run.status == "succeeded", sft_run.log_tail
    sft_adapter = Path(sft_run.output_dir)

    dpo = training.start_run(ctx, {"train_file": str(train), "valid_file": str(valid), "objective": "dpo",
                                   "start_from": sft.run_id, "max_steps": 4, "per_device_batch_size": 8})
    dpo_run = wait_for(lambda: (r := training.show_run(ctx, dpo.run_id)).status in training.FINAL_STATUSES and r,
                       timeout=180, what="the DPO run")
    assert dpo_run.status == "succeeded", dpo_run.log_tail
    assert dpo_run.objective == "dpo" and dpo_run.spec["start_from"] == str(sft_adapter)
    assert dpo_run.spec["base_model"] == "tiny-random"  # the SFT run's base: the adapter goes on it
    run_dir = Path(dpo_run.run_dir)

    events = _events(run_dir)
    started = next(e for e in events if e["type"] == "started")
    assert started["reference"] == "the start adapter, frozen (the SFT model)"
    assert started["start_from"] == str(sft_adapter)
    # The reference is the SFT model: at the first step, before any update, the policy (the SFT adapter) equals it,
    # so every reward is exactly 0 -- with the bare base as reference it would not be, as the SFT model differs.
    first = next(e for e in events if e["type"] == "log")
    assert first["rewards/chosen"] == 0 and first["rewards/rejected"] == 0 and first["rewards/margins"] == 0
    base = AutoModelForCausalLM.from_pretrained(Path(sft_run.run_dir) / "base_model")
    tokenizer = AutoTokenizer.from_pretrained(sft_adapter)
    sft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(Path(sft_run.run_dir) / "base_model"),
                                          str(sft_adapter))
    pair = held_out[0]
    assert abs(answer_logprob(sft_model, tokenizer, pair["prompt"], pair["rejected"])
               - answer_logprob(base, tokenizer, pair["prompt"], pair["rejected"])) > 0.5

    # The result is one adapter over the same base, of the SFT adapter's shape: it loads like an SFT run's output.
    out = Path(dpo_run.output_dir)
    assert not (out / "ref").exists()
    sft_config = json.loads((sft_adapter / "adapter_config.json").read_text())
    dpo_config = json.loads((out / "adapter_config.json").read_text())
    assert (dpo_config["r"], sorted(dpo_config["target_modules"])) == (sft_config["r"],
                                                                      sorted(sft_config["target_modules"]))
    assert dpo_config["base_model_name_or_path"] == str(run_dir / "base_model")
    kind, config = run_model_config(run_dir)
    assert kind == "hf_adapter" and config["adapter_dir"] == str(out)
    trained = load_local(kind, config)
    assert mean_margin(trained.model, trained.tokenizer, held_out) > mean_margin(sft_model, tokenizer, held_out)
    with torch.no_grad():  # trained further, not replaced: the same base weights underneath
        assert torch.equal(trained.model.get_base_model().model.embed_tokens.weight, base.model.embed_tokens.weight)

    # What the Train tab and `jobs` show of it.
    view = training.run_view(ctx, dpo.run_id)
    series = {p.series for p in view.preference}
    assert {"reward margin (train)", "preference accuracy (train)", "reward margin (validation)",
            "preference accuracy (validation)"} <= series
    assert [p.step for p in view.preference if p.series == "reward margin (train)"] == [1, 2, 3, 4]
    assert view.run.preference["rewards/margins"] == next(
        p.value for p in reversed(view.preference) if p.series == "reward margin (train)")
    listed = {r.id: r.objective for r in training.list_runs(ctx)}
    assert listed == {sft.run_id: "sft", dpo.run_id: "dpo"}
    assert training.run_view(ctx, sft.run_id).preference == []


@pytest.mark.usefixtures("no_stray_workers")
def test_a_file_that_does_not_fit_the_objective_is_refused(tmp_path, pair_data):
    from ftassist.usecases import training
    from ftassist.usecases.context import Context, UseCaseError

    ctx = Context.open()
    train, _, _ = pair_data
    chats = write_jsonl(tmp_path / "chats.jsonl", make_chat_rows(8))
    with pytest.raises(UseCaseError, match=r"holds chats .*DPO run trains on preference pairs.*use objective sft"):
        training.start_run(ctx, {"train_file": str(chats), "objective": "dpo"})
    with pytest.raises(UseCaseError, match=r"holds preference pairs .*objective dpo .*--method dpo"):
        training.start_run(ctx, {"train_file": str(train)})
    with pytest.raises(UseCaseError, match="neither a run id nor a folder"):
        training.start_run(ctx, {"train_file": str(train), "objective": "dpo", "start_from": "no-such-run"})
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(UseCaseError, match="neither a LoRA adapter"):
        training.start_run(ctx, {"train_file": str(train), "objective": "dpo", "start_from": str(empty)})
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "org/a"}))
    with pytest.raises(UseCaseError, match="trained on org/a: it cannot go on org/b"):
        training.start_run(ctx, {"train_file": str(train), "objective": "dpo", "start_from": str(adapter),
                                 "base_model": "org/b"})
    assert training.list_runs(ctx) == []  # nothing was started


# -- the CLI ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("no_stray_workers")
def test_cli_method_dpo_prints_the_final_line_with_margin_and_accuracy(tmp_path, capsys):
    from ftassist.cli import main

    pairs = write_jsonl(tmp_path / "arena_dpo.jsonl", preference_rows(40, 3))
    rc = main(["train", str(pairs), "--method", "dpo", "--max-steps", "3", "--batch-size", "8", "--beta", "0.2",
               "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["status"] == "succeeded" and result["objective"] == "dpo"
    for key in ("rewards/margins", "rewards/accuracies", "eval_rewards/margins", "eval_rewards/accuracies",
                "first_loss", "final_loss"):
        assert isinstance(result[key], float), (key, result)
    assert 0 <= result["rewards/accuracies"] <= 1 and "margin" in captured.err  # the progress line shows it
    assert re.search(r"started on cpu: tiny-random \(lora, DPO beta 0\.2\), \d+ pairs", captured.err), captured.err
    spec = json.loads(Path(result["run_dir"], "spec.json").read_text())
    assert (spec["objective"], spec["method"], spec["dpo_beta"]) == ("dpo", "lora", 0.2)
    assert spec["valid_file"] and file_kind(spec["valid_file"]) == "pairs"  # split before training
    assert main(["jobs", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert listed["objective"] == "dpo"
    assert main(["train", str(pairs), "--method", "dpo", "--objective", "sft"]) == 2
    assert "--method dpo trains on preference pairs" in capsys.readouterr().err


# -- the Train tab ---------------------------------------------------------------------------------------------
def test_the_train_form_carries_dpo_and_the_chart_draws_margin_and_accuracy():
    from ftassist.ui import train as tab
    from ftassist.usecases import training

    spec = tab.build_spec("local", "tiny-random", "lora", 1, None, 16, 32, 3, "p.jsonl", "", "", "", "openai", "", "",
                          "", None, "dpo", 0.25, " 20250101-000000-abcdef ")
    assert (spec["objective"], spec["dpo_beta"], spec["start_from"]) == ("dpo", 0.25, "20250101-000000-abcdef")
    sft = tab.build_spec("local", "tiny-random", "lora", 1, None, 16, 32, 3, "c.jsonl", "", "", "", "openai", "", "",
                         "", None, "sft", 0.25, "")
    assert sft["objective"] == "sft" and "dpo_beta" not in sft and "start_from" not in sft

    assert tab.preference_frame([]) is None
    points = [training.PreferencePoint(1, 0.0, "reward margin (train)", "margin"),
              training.PreferencePoint(2, 0.4, "reward margin (train)", "margin"),
              training.PreferencePoint(2, 0.75, "preference accuracy (train)", "accuracy")]
    frame = tab.preference_frame(points)
    assert list(frame.columns) == ["step", "value", "series"]
    assert set(frame["series"]) == {"reward margin (train)", "preference accuracy (train)",
                                    "reward margin (validation)", "preference accuracy (validation)"}
    run = training.RunDetails(id="r1", status="running", backend="local", base_model="tiny-random", method="lora",
                              run_dir="/x", objective="dpo",
                              preference={"rewards/margins": 0.4, "rewards/accuracies": 0.75})
    text = tab.status_markdown(run, True)
    assert "lora, DPO" in text and "Reward margin 0.400, preference accuracy 75%" in text
    assert tab.history_frame([run])["method"].tolist() == ["lora (dpo)"]
