"""Taking the model home: merged weights, an Ollama Modelfile, the vLLM command, GGUF, the Hub, and
`ftassist export`, on a real tiny-random LoRA run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from standins import HubStandIn

from ftassist.arena import models as arena_models
from ftassist.cli import main
from ftassist.train.spec import JobSpec
from ftassist.usecases import exporting
from ftassist.usecases.context import Context, NotFound, UseCaseError
from tests.train.conftest import make_chat_rows, run_worker, write_jsonl

TOKEN = "hf_THISisAsecretWRITEtoken123"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished tiny-random LoRA run (trained once for the module: 2 steps)."""
    run_dir = tmp_path_factory.mktemp("run")
    train = write_jsonl(run_dir / "train.jsonl", make_chat_rows(16))
    spec = JobSpec(base_model="tiny-random", train_file=str(train), output_dir=str(run_dir / "model"), max_steps=2)
    assert spec.validate() == []
    spec.save(run_dir)
    assert run_worker(run_dir) == 0, (run_dir / "worker.log").read_text(errors="replace")[-3000:]
    return run_dir


@pytest.fixture
def ctx() -> Context:
    return Context.open()


@pytest.fixture
def adapter(ctx, tiny_run) -> dict:
    """The run's adapter registered in this test's arena as "tiny bot"; its config."""
    kind, config = arena_models.run_model_config(tiny_run)
    assert kind == "hf_adapter"
    arena_models.add_model(ctx.store, kind, "tiny bot", config)
    return config


def test_merged_export_is_a_model_transformers_loads_and_runs(ctx, adapter, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    result = exporting.export_model(ctx, "tiny bot", "merged", str(out))
    assert result.out_dir == str(out) and str(out / "config.json") in result.files
    assert not (out / "adapter_config.json").exists()  # a whole model, not an adapter
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    inputs = tokenizer("What is the sun?", return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=1, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 1
    # the merge holds the adapter's update: the merged weights differ from the base's
    base = AutoModelForCausalLM.from_pretrained(adapter["base_model"])
    assert any(not torch.equal(p, base.state_dict()[n]) for n, p in model.state_dict().items())


def test_the_modelfile_loads_the_adapter_over_its_base_and_stops_on_the_tokenizers_tokens(ctx, adapter, tmp_path):
    from transformers import AutoTokenizer

    result = exporting.export_model(ctx, "tiny bot", "ollama", str(tmp_path / "ollama"))
    text = (tmp_path / "ollama" / "Modelfile").read_text()
    lines = text.splitlines()
    assert f"FROM {adapter['base_model']}" in lines and f"ADAPTER {adapter['adapter_dir']}" in lines
    assert lines.index(f"FROM {adapter['base_model']}") < lines.index(f"ADAPTER {adapter['adapter_dir']}")
    tokenizer = AutoTokenizer.from_pretrained(adapter["adapter_dir"])
    stops = [line.split(" ", 2)[2].strip('"') for line in lines if line.startswith("PARAMETER stop ")]
    assert tokenizer.eos_token in stops and len(stops) == len(set(stops))
    assert all(tokenizer.convert_tokens_to_ids(s) != tokenizer.unk_token_id for s in stops)
    if "<|im_start|>" in (tokenizer.chat_template or ""):  # a ChatML template becomes Ollama's ChatML TEMPLATE
        assert "<|im_end|>" in stops and 'TEMPLATE """' in text and "{{ .Role }}" in text
    assert result.command[:2] == ["ollama", "create"] and result.files == [str(tmp_path / "ollama" / "Modelfile")]


def test_a_modelfile_for_merged_weights_is_from_the_folder(ctx, adapter, tmp_path):
    merged = exporting.export_model(ctx, "tiny bot", "merged", str(tmp_path / "merged"))
    arena_models.add_model(ctx.store, "hf", "tiny merged", {"model": merged.out_dir})
    exporting.export_model(ctx, "tiny merged", "ollama", str(tmp_path / "ollama"))
    lines = (tmp_path / "ollama" / "Modelfile").read_text().splitlines()
    assert f"FROM {merged.out_dir}" in lines and not any(line.startswith("ADAPTER") for line in lines)


def test_the_vllm_command_serves_the_base_with_the_adapter_at_its_rank(ctx, adapter, tmp_path):
    rank = json.loads(Path(adapter["adapter_dir"], "adapter_config.json").read_text())["r"]
    result = exporting.export_model(ctx, "tiny bot", "vllm", str(tmp_path / "vllm"))
    cmd = result.command
    assert cmd[:3] == ["vllm", "serve", adapter["base_model"]] and "--enable-lora" in cmd
    name, _, path = cmd[cmd.index("--lora-modules") + 1].partition("=")
    assert name and path == adapter["adapter_dir"]
    max_rank = int(cmd[cmd.index("--max-lora-rank") + 1])
    assert max_rank >= rank and (max_rank == rank or rank not in (8, 16, 32, 64))
    script = (tmp_path / "vllm" / "serve.sh").read_text().splitlines()
    assert shlex.split(script[-1]) == cmd and result.files == [str(tmp_path / "vllm" / "serve.sh")]


def test_vllm_serves_a_whole_model_folder_as_is(tmp_path):
    from ftassist.train import export

    assert export.vllm_command(tmp_path) == ["vllm", "serve", str(tmp_path)]
    assert export.vllm_rank(8) == 8 and export.vllm_rank(12) == 16 and export.vllm_rank(300) == 320


def test_gguf_without_llama_cpps_converter_says_what_is_missing_and_writes_nothing(ctx, adapter, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UseCaseError, match="convert_hf_to_gguf.py") as caught:
        exporting.export_model(ctx, "tiny bot", "gguf", str(tmp_path / "gguf"))
    assert "LLAMA_CPP_DIR" in str(caught.value) and "llama.cpp" in str(caught.value)
    assert not (tmp_path / "gguf").exists()


def test_gguf_runs_the_converter_on_the_merged_model(ctx, adapter, tmp_path, monkeypatch):
    """A stand-in converter (llama.cpp's command line) records what it was given and writes the outfile."""
    llama = tmp_path / "llama.cpp"
    llama.mkdir()
    (llama / "convert_hf_to_gguf.py").write_text(
        "import json, pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "out = pathlib.Path(args[args.index('--outfile') + 1])\n"
        "out.write_bytes(b'GGUF')\n"
        "pathlib.Path(out.parent, 'argv.json').write_text(json.dumps(args))\n")
    monkeypatch.setenv("LLAMA_CPP_DIR", str(llama))
    result = exporting.export_model(ctx, "tiny bot", "gguf", str(tmp_path / "gguf"))
    (gguf,) = result.files
    assert Path(gguf).read_bytes() == b"GGUF"
    argv = json.loads((tmp_path / "gguf" / "argv.json").read_text())
    assert (Path(argv[0]) / "config.json").is_file() and not (Path(argv[0]) / "adapter_config.json").exists()


def test_unknown_models_and_api_models_are_refused_clearly(ctx):
    with pytest.raises(NotFound, match="ftassist jobs"):
        exporting.export_model(ctx, "no-such-model", "merged", "")
    arena_models.add_model(ctx.store, "openai", "gpt", {"model": "gpt-4.1-mini"})
    with pytest.raises(UseCaseError, match="not here to export"):
        exporting.export_model(ctx, "gpt", "ollama", "")
    with pytest.raises(UseCaseError, match="choose one of"):
        exporting.export_model(ctx, "gpt", "onnx", "")


def test_push_uploads_the_adapter_to_a_private_repo(ctx, adapter, monkeypatch):
    server = HubStandIn()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        with pytest.raises(UseCaseError, match="HF_TOKEN"):
            exporting.push_model(ctx, "tiny bot", "me/tiny-bot")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        result = exporting.push_model(ctx, "tiny bot", "me/tiny-bot")
        assert result.private and result.url == f"{server.url}/me/tiny-bot"
        created = server.repos["me/tiny-bot"]
        assert created.get("visibility") == "private" or created.get("private") is True
        uploaded = server.files["me/tiny-bot"]
        assert uploaded["adapter_config.json"] == Path(adapter["adapter_dir"], "adapter_config.json").read_bytes()
        server.fail_commits = True
        with pytest.raises(UseCaseError, match="Push to me/tiny-bot failed") as caught:
            exporting.push_model(ctx, "tiny bot", "me/tiny-bot")
        assert TOKEN not in str(caught.value)
    finally:
        server.close()


@pytest.mark.slow
def test_ftassist_export_json_by_run_id(tmp_path, capsys, no_stray_workers):
    train = write_jsonl(tmp_path / "chat.jsonl", make_chat_rows(16))
    assert main(["train", str(train), "--base-model", "tiny-random", "--max-steps", "2", "--json"]) == 0
    run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert run["status"] == "succeeded"
    out = tmp_path / "vllm"
    assert main(["export", run["job_id"], "--to", "vllm", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["files"] == [str(out / "serve.sh")] and result["command"][:2] == ["vllm", "serve"]
    assert result["adapter_dir"] == run["output_dir"] and "--enable-lora" in result["command"]
    assert main(["export", run["job_id"], "--to", "ollama", "--out", str(tmp_path / "ollama")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(tmp_path / "ollama" / "Modelfile") and "ollama create" in printed[-1]
    assert main(["export", run["job_id"], "--to", "vllm", "--push-to", "me/bot"]) == 2
    assert "--to merged" in capsys.readouterr().err
    assert main(["export", run["job_id"]]) == 2 and "--to {merged,ollama,vllm,gguf}" in capsys.readouterr().err
    assert main(["export", "no-such-run", "--to", "ollama"]) == 2
    assert "No arena model or run 'no-such-run'" in capsys.readouterr().err
