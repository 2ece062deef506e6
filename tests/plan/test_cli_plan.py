"""`ftassist estimate` and `ftassist guide` from the command line."""

from __future__ import annotations

import io
import json

import pytest

from ftassist.cli import main
from ftassist.data.report import DataReport, TokenStats


def run_json(capsys, *argv) -> dict:
    assert main(["estimate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_quick_mode_seed_example_json(capsys):
    d = run_json(capsys, "--examples", "1000", "--avg-tokens", "500", "--model", "gpt-3.5-turbo",
                 "--training-price", "8", "--epochs", "1")
    assert d["epochs"] == 1
    assert d["billing_tokens"] == 500_000 and d["trained_tokens"] == 500_000
    assert d["training_cost_usd"] == pytest.approx(4.0)
    assert [o["kind"] for o in d["options"]] == ["openai"]  # --model alone: OpenAI only


def test_auto_epochs_and_all_options(capsys):
    d = run_json(capsys, "--examples", "8334", "--avg-tokens", "100")
    assert d["epochs"] == 2
    kinds = {o["kind"] for o in d["options"]}
    assert kinds == {"openai", "self_hosted", "hf_jobs", "together"}
    assert d["recommended_id"] in {o["id"] for o in d["options"]}


def test_self_hosted_json_keys(capsys):
    d = run_json(capsys, "--examples", "1000", "--avg-tokens", "500", "--base-model", "meta-llama/Llama-3.1-8B",
                 "--method", "qlora", "--gpu", "RTX 4090", "--gpu-price", "RTX 4090=0.5")
    assert [o["kind"] for o in d["options"]] == ["self_hosted"]
    for key in ("memory_gb", "fits", "hours", "cost_usd", "epochs", "billing_tokens", "trained_tokens"):
        assert key in d, key
    assert d["fits"] is True and d["memory_gb"] < 24
    assert d["cost_usd"] == pytest.approx(d["hours"] * 0.5)
    d = run_json(capsys, "--examples", "1000", "--avg-tokens", "500", "--method", "full", "--gpu", "RTX 4090")
    assert d["fits"] is False


def test_price_flag_and_text_output(capsys):
    d = run_json(capsys, "--examples", "10", "--avg-tokens", "100", "--model", "gpt-4o-mini", "--price", "output=2.4")
    assert "output" in d["options"][0]["note"]
    assert main(["estimate", "--examples", "100", "--avg-tokens", "300", "--how"]) == 0
    out = capsys.readouterr().out
    assert "★" in out and "Recommended:" in out and "auto epochs" in out and "FLOPs" in out


@pytest.mark.parametrize("argv, message", [
    (["--examples", "10"], "--avg-tokens"),
    (["x.jsonl", "--examples", "10", "--avg-tokens", "5"], "not both"),
    (["--examples", "10", "--avg-tokens", "5", "--epochs", "many"], "whole number"),
    (["--examples", "10", "--avg-tokens", "5", "--model", "gpt-9"], "No prices"),
    (["--examples", "10", "--avg-tokens", "5", "--gpu", "Voodoo2"], "Unknown GPU"),
    (["--examples", "10", "--avg-tokens", "5", "--gpu-price", "L4"], "NAME=VALUE"),
])
def test_bad_input_is_one_line(capsys, argv, message):
    assert main(["estimate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_estimate_path_uses_the_check_report(capsys, monkeypatch, tmp_path):
    import ftassist.data.check as check

    calls = []
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.jsonl").write_text("{}\n")  # the path must exist; the check itself is the fake below

    def fake_check(path, model=None, encoding=None, **kw):
        calls.append((str(path), model))
        per = [120, 80, 100]
        return DataReport(path=str(path), n_records=3, n_examples=3, format="chat",
                          tokens=TokenStats("o200k_base", True, per, [20, 20, 20], total=300))

    monkeypatch.setattr(check, "check_path", fake_check)
    d = run_json(capsys, "data.jsonl", "--model", "gpt-4.1-mini")
    assert calls == [("data.jsonl", "gpt-4.1-mini")]
    assert d["billing_tokens"] == 300 and d["epochs"] == 25  # 3 examples: min(25, 100 // 3) = 33 -> 25
    assert d["trained_tokens"] == 7500 and d["training_cost_usd"] == pytest.approx(7500 * 5 / 1e6)
    assert d["inputs"]["source"] == "report"


def test_estimate_real_file(tmp_path, capsys):
    # Integration with the Data step's real check (token counts from the report).
    try:
        from ftassist.data.check import check_path
    except ImportError:
        pytest.skip("the data check is not available")
    path = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {i}+{i}?"}, {"role": "assistant", "content": str(2 * i)}]}
            for i in range(30)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    try:
        report = check_path(path, model="gpt-4o-mini")
    except ImportError:
        pytest.skip("the data check is not complete yet")
    d = run_json(capsys, str(path), "--model", "gpt-4o-mini")
    assert d["billing_tokens"] == sum(report.tokens.per_example)
    assert d["epochs"] == 3


def _guide(monkeypatch, capsys, text, *argv):
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["guide", *argv]) == 0
    return capsys.readouterr().out


def test_guide_reads_answers_from_stdin(monkeypatch, capsys):
    # current info? n; style? y; terminology? n; examples 40; budget high; hardware multi_gpu; data may leave y;
    # OpenAI fine-tuning customer n; volume n; tried prompting y
    out = _guide(monkeypatch, capsys, "n\ny\nn\n40\nhigh\n4\ny\nn\nn\ny\n")
    assert "active OpenAI fine-tuning customer? [y/n] (default n)" in out
    assert "Fine-tuning (SFT), with LoRA" in out
    assert "40 examples are too few for full fine-tuning" in out
    assert "Overfitting" in out


def test_guide_json_reprompts_and_defaults(monkeypatch, capsys):
    # a bad answer is asked again; input ending early keeps the defaults for the rest
    out = _guide(monkeypatch, capsys, "maybe\ny\n", "--json")
    d = json.loads(out[out.index("{"):])
    assert d["approach"] == "rag" and "rag_for_facts" in d["rule_ids"]
    assert "answer y or n" in out


def test_guide_answers_flag(capsys):
    assert main(["guide", "--json", "--answers", json.dumps({"style_or_format": True, "tried_prompting": True,
                                                             "n_examples": 2000, "hardware": "consumer_gpu"})]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["approach"] == "fine_tune" and d["method"] == "qlora"
    assert main(["guide", "--answers", "{\"budget\": \"infinite\"}"]) == 2
    assert "budget must be one of" in capsys.readouterr().err


def test_example_file_quick_mode(tmp_path, capsys):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello!"}]}) + "\n")
    d = run_json(capsys, "--example-file", str(path), "--examples", "200", "--model", "gpt-4o-mini")
    from ftassist.data.tokens import count_chat

    total, _ = count_chat(json.loads(path.read_text()), "o200k_base")
    assert d["billing_tokens"] == 200 * total and d["inputs"]["source"] == "pasted example"
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["estimate", "--example-file", str(tmp_path / "empty.jsonl"), "--examples", "5"]) == 2
    assert "is empty" in capsys.readouterr().err


def test_guide_with_dataset_path(monkeypatch, capsys, tmp_path):
    import ftassist.data.check as check
    from ftassist.data.report import ChecklistItem

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.jsonl").write_text("{}\n")  # the path must exist; the check itself is the fake below
    monkeypatch.setattr(check, "check_path", lambda path, **kw: DataReport(
        path=str(path), n_records=40, n_examples=40, format="chat",
        checklist=[ChecklistItem("consistent", "Consistent", "fail", "mixed styles")]))
    # 8 questions (the number of examples comes from the dataset)
    out = _guide(monkeypatch, capsys, "n\ny\nn\nhigh\n4\ny\nn\ny\n", "data.jsonl")
    assert "40 (from data.jsonl)" in out
    assert "Fix the data first" in out and "consistent" in out
