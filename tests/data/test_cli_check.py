"""`ftassist check` / `ftassist clean`: exit codes and JSON, run as a real subprocess."""

import json
import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ftassist", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def good_lines(n=12):
    return [json.dumps({"messages": [{"role": "user", "content": f"Question {i} about billing?"},
                                     {"role": "assistant", "content": f"Answer {i}: see the billing page."}]})
            for i in range(n)]


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_text("\n".join(good_lines()) + "\n")
    return path


def test_exit_0_and_json_contract(good):
    res = run("check", str(good), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["errors"] == [] and report["error_counts"] == {}
    assert len(report["tokens"]["per_example"]) == 12
    assert {"id", "status"} <= set(report["checklist"][0])
    assert isinstance(report["warnings"], list)


def test_exit_1_on_dataset_errors(tmp_path):
    lines = good_lines()
    lines[3] = '{"messages": [{"role": "user"}]}'
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    res = run("check", str(path), "--json")
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert all(isinstance(e["line"], int) for e in report["errors"])
    assert report["error_counts"]["message_missing_key"] == 1
    assert any(e["line"] == 4 for e in report["errors"])
    text = run("check", str(path))
    assert text.returncode == 1 and "line 4" in text.stdout and "Traceback" not in text.stdout + text.stderr


def test_exit_2_when_unreadable(tmp_path):
    missing = run("check", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    binary = tmp_path / "x.parquet"
    binary.write_bytes(b"\x00\x01garbage" * 100)
    res = run("check", str(binary))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


def test_clean_writes_a_split(good, tmp_path):
    out = tmp_path / "out"
    res = run("clean", str(good), "--out", str(out), "--valid-fraction", "0.25", "--seed", "7")
    assert res.returncode == 0, res.stderr
    train = (out / "train.jsonl").read_text().splitlines()
    valid = (out / "valid.jsonl").read_text().splitlines()
    assert len(train) + len(valid) == 12 and valid
    assert not set(train) & set(valid)


def test_model_sets_the_per_example_limit(tmp_path):
    lines = good_lines()
    lines.append(json.dumps({"messages": [{"role": "user", "content": "word " * 33_000},
                                          {"role": "assistant", "content": "ok."}]}))
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(lines) + "\n")
    nano = json.loads(run("check", str(path), "--model", "gpt-4.1-nano-2025-04-14", "--json").stdout)
    assert nano["tokens"]["limit"] == 32_768 and nano["tokens"]["over_limit"] == [13]
    assert [w["line"] for w in nano["warnings"] if w["code"] == "over_context_limit"] == [13]
    mini = json.loads(run("check", str(path), "--model", "gpt-4.1-mini-2025-04-14", "--json").stdout)
    assert mini["tokens"]["limit"] == 65_536 and mini["tokens"]["over_limit"] == []
