"""The local worker, run for real as a subprocess on CPU with the tiny-random model."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ftassist.train.events import EventWriter, last_terminal, read_events
from ftassist.train.spec import JobSpec
from ftassist.train.worker import SetupError
from tests.train.conftest import run_worker, start_worker, wait_for_event


def _spec(train, valid, run_dir: Path, **kw) -> JobSpec:
    spec = JobSpec(base_model="tiny-random", train_file=str(train), valid_file=str(valid) if valid else None,
                   output_dir=str(run_dir / "model"), **kw)
    assert spec.validate() == []
    spec.save(run_dir)
    return spec


def _events(run_dir: Path) -> list[dict]:
    events, _ = read_events(run_dir)
    return events


def _log(run_dir: Path) -> str:
    return (run_dir / "worker.log").read_text(errors="replace")[-4000:]


# -- the events contract --------------------------------------------------------------------------
def test_events_partial_line_is_left_for_next_read(tmp_path):
    w = EventWriter(tmp_path)
    w.log(step=1, loss=2.5, total_steps=10)
    w.eval(step=1, eval_loss=float("nan"))  # NaN must not produce invalid JSON
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"type": "log", "step": 2')  # a writer caught mid-line
    events, offset = read_events(tmp_path)
    assert [e["type"] for e in events] == ["log", "eval"]
    assert events[0]["loss"] == 2.5 and events[1]["eval_loss"] is None and "ts" in events[0]
    again, offset2 = read_events(tmp_path, offset)
    assert again == [] and offset2 == offset
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write(', "loss": 1.0}\n')
    rest, _ = read_events(tmp_path, offset)
    assert rest[0]["step"] == 2 and rest[0]["loss"] == 1.0
    assert read_events(tmp_path / "missing") == ([], 0)


def test_disabled_writer_writes_nothing(tmp_path):
    EventWriter(tmp_path, enabled=False).failed(reason="x")
    assert not (tmp_path / "events.jsonl").exists()


def test_prepare_tokenizer_gives_templateless_models_chatml(tmp_path):
    from ftassist.train.tiny import build_tokenizer
    from ftassist.train.worker import prepare_tokenizer, to_prompt_completion

    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]

    def trained_text(tok) -> str:
        out = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        return tok.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])

    tok = build_tokenizer(["hello world", "how are you"])
    tok.chat_template = None
    assert prepare_tokenizer(tok) == "assistant_only"  # the tiny tokenizer has the ChatML tokens
    assert trained_text(tok) == "hello<|im_end|>"  # the answer and its stop token, nothing else

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(["hello world"], trainers.BpeTrainer(
        special_tokens=["<unk>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    plain = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="</s>", unk_token="<unk>")
    vocab_before = len(plain)
    assert prepare_tokenizer(plain) == "assistant_only"
    assert len(plain) == vocab_before and plain.pad_token == "</s>"  # nothing added: no embedding resize
    assert trained_text(plain) == "hello</s>"

    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert prepare_tokenizer(tok) == "last_turn"  # a template TRL cannot patch
    conv = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    pc = to_prompt_completion(conv)
    assert pc["completion"] == [conv[3]] and pc["prompt"] == conv[:3]


# -- real runs --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_lora_run_to_completion_then_load_and_generate(tmp_path, chat_data):
    train, valid = chat_data
    run_dir = tmp_path / "run"
    spec = _spec(train, valid, run_dir, method="lora", num_epochs=3, merge_adapter=True)
    t0 = time.time()
    rc = run_worker(run_dir)
    assert rc == 0, _log(run_dir)
    events = _events(run_dir)
    types = [e["type"] for e in events]
    for t in ("started", "log", "eval", "checkpoint", "finished"):
        assert t in types, (t, types)
    assert types[-1] == "finished" and types.index("started") < types.index("log")

    started = next(e for e in events if e["type"] == "started")
    assert started["method"] == "lora" and started["device"] == "cpu" and started["num_examples"] == 40
    assert started["total_steps"] > 0 and started["pid"] > 0 and started["loss_on"] == "assistant"

    logs = [e for e in events if e["type"] == "log"]
    assert logs[0]["step"] == 1 and logs[-1]["step"] == started["total_steps"]
    assert logs[-1]["loss"] < logs[0]["loss"], [e["loss"] for e in logs]
    assert any(e["tokens_per_s"] and e["tokens_per_s"] > 0 for e in logs)
    assert logs[-1]["eta_s"] == pytest.approx(0, abs=1e-6) and logs[0]["eta_s"] > 0
    evals = [e for e in events if e["type"] == "eval"]
    assert all(e["perplexity"] == pytest.approx(2.718281828 ** e["eval_loss"], rel=1e-6) for e in evals)

    fin = events[-1]
    assert fin["final_loss"] < fin["first_loss"]
    assert fin["best_eval_loss"] == pytest.approx(min(e["eval_loss"] for e in evals))
    out = Path(fin["output_dir"])
    assert out == Path(spec.output_dir).resolve()
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final_loss"] == fin["final_loss"]
    assert metrics["packing"] is False and metrics["batching"] == "length-grouped"  # CPU: no varlen attention
    assert 0 < metrics["trainable_params"] < metrics["total_params"]

    # The adapter loads with PEFT on the base model and generates text.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(run_dir / "base_model")
    model = PeftModel.from_pretrained(base, str(out)).eval()
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    new = gen[0, prompt["input_ids"].shape[1]:]
    assert len(new) > 0 and isinstance(tok.decode(new, skip_special_tokens=True), str)

    merged = Path(fin["merged_dir"])
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    fresh = AutoModelForCausalLM.from_pretrained(run_dir / "base_model")
    merged_model = AutoModelForCausalLM.from_pretrained(merged)
    assert merged_model.num_parameters() == fresh.num_parameters()
    # the merge changed the adapted projections and nothing else
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged_model.state_dict()[q], fresh.state_dict()[q])
    e = "model.embed_tokens.weight"
    assert torch.equal(merged_model.state_dict()[e], fresh.state_dict()[e])
    assert time.time() - t0 < 150


@pytest.mark.slow
def test_full_fine_tuning_without_validation(tmp_path, chat_data):
    train, _ = chat_data
    run_dir = tmp_path / "run"
    _spec(train, None, run_dir, method="full", max_steps=12, packing=True)
    assert run_worker(run_dir) == 0, _log(run_dir)
    events = _events(run_dir)
    assert "eval" not in [e["type"] for e in events]
    fin = last_terminal(events)
    assert fin["type"] == "finished" and fin["final_loss"] < fin["first_loss"]
    assert fin["best_eval_loss"] is None
    out = Path(fin["output_dir"])
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    started = next(e for e in events if e["type"] == "started")
    assert started["total_steps"] == 12 and started["packing"] is True and started["batching"] == "packed"
    assert started["learning_rate"] == 2e-3  # the tiny-random preset for full fine-tuning


@pytest.mark.slow
def test_sigterm_cancels_gracefully_and_saves(tmp_path, chat_data):
    train, valid = chat_data
    run_dir = tmp_path / "run"
    _spec(train, valid, run_dir, max_steps=100_000)
    proc = start_worker(run_dir)
    try:
        wait_for_event(run_dir, "log", proc)
        sent = time.time()
        os.kill(proc.pid, signal.SIGTERM)
        rc = proc.wait(timeout=30)
        took = time.time() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, _log(run_dir)
    assert took < 15, took
    events = _events(run_dir)
    end = last_terminal(events)
    assert end["type"] == "cancelled" and events[-1] is end
    assert end["step"] >= 1 and end["step"] < 100_000
    assert (Path(end["output_dir"]) / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_sigkill_leaves_a_readable_events_file(tmp_path, chat_data):
    train, valid = chat_data
    run_dir = tmp_path / "run"
    _spec(train, valid, run_dir, max_steps=100_000)
    proc = start_worker(run_dir)
    try:
        wait_for_event(run_dir, "log", proc)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    raw = (run_dir / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    events = _events(run_dir)
    assert "started" in [e["type"] for e in events] and "log" in [e["type"] for e in events]
    assert last_terminal(events) is None  # no terminal event: the job manager marks it failed


def test_qlora_is_refused_on_cpu_before_loading(tmp_path, chat_data):
    train, valid = chat_data
    run_dir = tmp_path / "run"
    _spec(train, valid, run_dir, method="qlora")
    t0 = time.time()
    rc = run_worker(run_dir, timeout=60)
    assert rc == 3, _log(run_dir)
    assert time.time() - t0 < 30
    events = _events(run_dir)
    assert [e["type"] for e in events] == ["failed"]
    assert "CUDA" in events[0]["reason"]
    assert events[0]["hint"] == ("QLoRA needs an NVIDIA GPU (bitsandbytes 4-bit); use LoRA on CPU or run on a "
                                 "GPU machine")
    assert not (run_dir / "base_model").exists() and not (run_dir / "model").exists()


def test_invalid_spec_fails_with_the_problems(tmp_path, chat_data):
    train, _ = chat_data
    run_dir = tmp_path / "run"
    JobSpec(train_file=str(train), output_dir=str(run_dir / "m"), lora_r=0, num_epochs=-1).save(run_dir)
    assert run_worker(run_dir, timeout=60) == 2
    (ev,) = _events(run_dir)
    assert ev["type"] == "failed" and "lora_r" in ev["reason"] and "num_epochs" in ev["reason"]


def test_a_bad_base_model_fails_fast_with_a_hint(tmp_path):
    from ftassist.train.worker import MODEL_HINT, OOM_HINT, SetupError, check_base_model, hint_for

    empty = tmp_path / "no-model"
    empty.mkdir()
    for bad in (str(empty), str(tmp_path / "missing"), "./rel/missing", "has space/model"):
        with pytest.raises(SetupError) as err:
            check_base_model(bad)
        assert hint_for(err.value) == MODEL_HINT
    (empty / "config.json").write_text("{}")
    check_base_model(str(empty))  # a local folder with config.json
    check_base_model("Qwen/Qwen2.5-0.5B-Instruct")  # a Hub id (not fetched here)
    assert hint_for(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")) == OOM_HINT
    assert "HF_TOKEN" in hint_for(OSError("gated repo: you must be authenticated"))


# -- the recipe, in process ------------------------------------------------------------------------
def test_recipe_masks_non_assistant_tokens_and_keeps_the_best_checkpoint(tmp_path, chat_data):
    from transformers import EarlyStoppingCallback

    from ftassist.train.worker import StopFlag, build_trainer

    train, valid = chat_data
    run_dir = tmp_path / "run"
    spec = _spec(train, valid, run_dir, early_stopping_patience=2)
    prep = build_trainer(spec, run_dir, EventWriter(run_dir), StopFlag())
    args = prep.trainer.args
    assert args.assistant_only_loss and args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert any(isinstance(c, EarlyStoppingCallback) for c in prep.trainer.callback_handler.callbacks)
    assert args.activation_checkpointing is False and args.bf16 is False  # CPU: no memory pressure, no bf16
    assert args.packing is False and args.train_sampling_strategy == "group_by_length"
    tok = prep.tokenizer
    row = prep.trainer.train_dataset[0]
    trained = tok.decode([t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100])
    assert trained == "The capital of France is Paris.<|im_end|>"  # the answer and its stop token only
    assert prep.started_fields["max_seq_length"] == 64 and prep.started_fields["loss_on"] == "assistant"
    assert (run_dir / "base_model" / "config.json").is_file()


def test_weight_zero_turns_are_context_not_lessons(tmp_path, chat_data):
    """OpenAI's chat format: an assistant turn with "weight": 0 is shown to the model but not learned."""
    from ftassist.train.worker import StopFlag, build_trainer, load_chat_jsonl, to_prompt_completion

    train, valid = chat_data
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    rows[0] = {"messages": [
        {"role": "user", "content": "What is the sun?"},
        {"role": "assistant", "content": "A lamp.", "weight": 0},
        {"role": "user", "content": "Really?"},
        {"role": "assistant", "content": "The sun is a star at the centre of our solar system.", "weight": 1},
        {"role": "user", "content": "And cats?"},
        {"role": "assistant", "content": "Cats like to sleep in warm places.", "weight": 0},
    ]}
    rows.append({"messages": [{"role": "user", "content": "x"},
                              {"role": "assistant", "content": "nothing to learn", "weight": 0}]})
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    convs, skipped = load_chat_jsonl(train)
    assert skipped == 1 and len(convs) == len(rows) - 1  # only weight-0 answers: nothing to teach

    pc = to_prompt_completion(convs[0])  # the last turn to learn, not the last turn
    assert pc["completion"][0]["content"].startswith("The sun") and len(pc["prompt"]) == 3
    assert all(set(m) == {"role", "content"} for m in pc["prompt"] + pc["completion"])

    run_dir = tmp_path / "run"
    prep = build_trainer(_spec(train, valid, run_dir, max_seq_length=256), run_dir, EventWriter(run_dir), StopFlag())
    tok = prep.tokenizer
    ds = prep.trainer.train_dataset
    assert len(ds) == len(convs)

    def learned(row) -> str:
        return tok.decode([t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100])

    everything = tok.decode(ds[0]["input_ids"])
    assert "A lamp." in everything and "Cats like" in everything  # still in the context
    assert learned(ds[0]) == "The sun is a star at the centre of our solar system.<|im_end|>"
    assert learned(ds[1]) == tok.decode(tok.encode(rows[1]["messages"][-1]["content"])) + "<|im_end|>"
    assert prep.started_fields["untrained_turns"] == 2
    messages = [e["text"] for e in _events(run_dir) if e["type"] == "message"]
    assert any("2 assistant turns have weight 0" in m for m in messages)


def test_a_template_that_merges_turns_is_flagged_only_when_a_weight_0_turn_needs_masking():
    from ftassist.train.tiny import build_tokenizer
    from ftassist.train.worker import tokenize_weighted

    tok = build_tokenizer(["hello world", "how are you"])
    merged = ("{% generation %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>"
              "{% endfor %}{% endgeneration %}")  # one block for the whole conversation
    conv = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    row, matched = tokenize_weighted(tok, conv, merged)
    assert matched and all(row["assistant_masks"])  # nothing to mask out: no warning owed
    conv[1] = dict(conv[1], weight=0)
    row, matched = tokenize_weighted(tok, conv, merged)
    assert not matched and all(row["assistant_masks"])  # cannot find the turn: trained, and flagged


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
TOOL_CHAT = {"tools": TOOLS, "messages": [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
    {"role": "assistant", "content": "It is 18 C and sunny in Paris."},
]}


def _with_tool_chat(train: Path) -> None:
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    train.write_text("".join(json.dumps(r) + "\n" for r in [TOOL_CHAT] + rows))


def test_tool_calls_are_learned_and_tool_results_are_context(tmp_path, chat_data):
    from ftassist.train.worker import StopFlag, build_trainer

    train, valid = chat_data
    _with_tool_chat(train)
    run_dir = tmp_path / "run"
    prep = build_trainer(_spec(train, valid, run_dir, max_seq_length=512), run_dir, EventWriter(run_dir), StopFlag())
    tok, row = prep.tokenizer, prep.trainer.train_dataset[0]
    seen = tok.decode(row["input_ids"])
    assert '"name": "get_weather"' in seen and "18 C and sunny<|im_end|>" in seen  # tools listed, result shown
    learned = tok.decode([t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100])
    assert learned == ('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><|im_end|>'
                       "It is 18 C and sunny in Paris.<|im_end|>")  # the call and the answer, not the result
    assert prep.started_fields["num_examples"] == 41


def test_tool_conversations_are_left_out_when_the_template_cannot_write_calls(tmp_path, chat_data):
    from transformers import AutoTokenizer

    from ftassist.train.tiny import build_tiny_model
    from ftassist.train.worker import StopFlag, build_trainer

    train, valid = chat_data
    _with_tool_chat(train)
    base = tmp_path / "no_tools_base"
    build_tiny_model(base, ["What is the weather?", "It is sunny."], seed=0)
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}"
                         "{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}{% else %}"
                         "{{ m['content'] }}<|im_end|>{% endif %}\n{% endfor %}")
    tok.save_pretrained(base)
    run_dir = tmp_path / "run"
    spec = JobSpec(base_model=str(base), train_file=str(train), valid_file=str(valid), output_dir=str(run_dir / "m"))
    spec.save(run_dir)
    prep = build_trainer(spec, run_dir, EventWriter(run_dir), StopFlag())
    assert prep.started_fields["num_examples"] == 40  # the tool conversation is out, the rest trains
    warnings = [e["text"] for e in _events(run_dir) if e["type"] == "message" and e.get("level") == "warning"]
    assert any("left out 1 training conversations that use tools" in w for w in warnings)

    only_tools = tmp_path / "only_tools.jsonl"
    only_tools.write_text(json.dumps(TOOL_CHAT) + "\n")
    spec = JobSpec(base_model=str(base), train_file=str(only_tools), output_dir=str(run_dir / "m"))
    with pytest.raises(SetupError, match="every training conversation uses tools") as caught:
        build_trainer(spec, run_dir, EventWriter(run_dir), StopFlag())
    assert "supports tools" in caught.value.hint


def test_openai_backend_is_delegated_through_the_same_events(tmp_path, monkeypatch):
    import sys
    import types

    from ftassist.train import worker

    calls = {}

    def run_job(spec, run_dir, writer):
        calls["spec"] = spec
        writer.finished(output_dir="ft:gpt-4o-mini:me::abc", final_loss=0.5, first_loss=1.5)
        return {"status": "succeeded"}

    monkeypatch.setitem(sys.modules, "ftassist.train.openai_ft", types.SimpleNamespace(run_job=run_job))
    train = tmp_path / "t.jsonl"
    train.write_text("{}\n")
    JobSpec(backend="openai", train_file=str(train)).save(tmp_path)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert worker.main([str(tmp_path)]) == 0
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
    assert calls["spec"].backend == "openai"
    assert last_terminal(_events(tmp_path))["output_dir"].startswith("ft:")
