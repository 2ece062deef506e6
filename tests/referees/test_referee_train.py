"""Train station checks against referees: token positions worked out here, and a stand-in endpoint
that really answers 401 (and 403) with the key it was given."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ftassist.train import openai_ft
from ftassist.train.events import EventWriter
from ftassist.train.spec import JobSpec

# A template TRL cannot patch with {% generation %} markers: the worker falls back to "last turn"
# (prompt/completion). Each turn ends with the stop token <|im_end|>, nothing after it.
UNPATCHABLE = ("{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}<|im_end|>{% endfor %}"
               "{% if add_generation_prompt %}<<assistant>>{% endif %}")

CONVERSATIONS = [
    [("user", "What is the capital of France?"), ("assistant", "The capital of France is Paris."),
     ("user", "And of Italy?"), ("assistant", "The capital of Italy is Rome.")],
    [("system", "Answer briefly."), ("user", "When does water boil?"),
     ("assistant", "Water boils at one hundred degrees Celsius.")],
    [("user", "What do cats like?"), ("assistant", "Cats like to sleep."), ("user", "Where?"),
     ("assistant", "Cats sleep in warm places.")],
]


def write_chats(path: Path, convs) -> Path:
    rows = [{"messages": [{"role": r, "content": c} for r, c in conv]} for conv in convs]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def unpatchable_model(tmp_path) -> Path:
    """The tiny-random model with its tokenizer's template swapped for one TRL cannot patch."""
    from transformers import AutoTokenizer

    from ftassist.train.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path / "base", [c for conv in CONVERSATIONS for _, c in conv] * 3)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = UNPATCHABLE
    tokenizer.save_pretrained(folder)
    return Path(folder)


# -- 6. last-turn mode learns the last answer and its stop token, nothing else -------------
def test_last_turn_mode_learns_exactly_the_last_answer_and_its_stop_token(tmp_path, unpatchable_model):
    from transformers import AutoTokenizer

    from ftassist.train.worker import StopFlag, build_trainer

    train = write_chats(tmp_path / "train.jsonl", CONVERSATIONS)
    run_dir = tmp_path / "run"
    spec = JobSpec(base_model=str(unpatchable_model), train_file=str(train), output_dir=str(run_dir / "model"),
                   max_seq_length=256, max_steps=1)
    assert spec.validate() == []
    prep = build_trainer(spec, run_dir, EventWriter(run_dir), StopFlag())
    assert prep.started_fields["loss_on"] == "last_assistant_turn"  # the mode under test really was taken

    tokenizer = AutoTokenizer.from_pretrained(unpatchable_model)
    stop_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    dataset = prep.trainer.train_dataset
    assert len(dataset) == len(CONVERSATIONS)
    for row, conv in zip(dataset, CONVERSATIONS):
        ids = list(row["input_ids"])
        mask = list(row["completion_mask"]) if "completion_mask" in row else [int(x != -100) for x in row["labels"]]
        # the referee: the rendered text ends with the last answer and its stop token, so those are
        # the last len(answer) + 1 tokens; every earlier position (system, user turns, the first
        # answer, the role headers) must be left out
        answer = conv[-1][1]
        answer_ids = tokenizer.encode(answer, add_special_tokens=False)
        expected_positions = list(range(len(ids) - len(answer_ids) - 1, len(ids)))
        assert ids[-1] == stop_id and ids[expected_positions[0]:-1] == answer_ids
        learned_positions = [i for i, bit in enumerate(mask) if bit]
        assert learned_positions == expected_positions, tokenizer.decode([ids[i] for i in learned_positions])
        for role, text in conv[:-1]:
            assert text not in tokenizer.decode([ids[i] for i in learned_positions]), role


# -- a key echoed in a refusal never reaches the run's files or the returned error -----------
KEY = "local-secret-Wd4s8Tq2Zr6N"  # no provider key shape: only scrubbing by the key itself hides it


def spec_for(tmp_path: Path, server) -> JobSpec:
    train = write_chats(tmp_path / "train.jsonl", CONVERSATIONS * 4)
    spec = JobSpec(backend="openai", train_file=str(train), seed=7, openai={
        "model": "gpt-4o-mini-2024-07-18", "n_epochs": 1, "provider": "custom", "base_url": server.base_url,
        "poll_interval": 0.01, "retry_base_delay": 0.01})
    assert spec.validate() == []
    return spec


def echoed_body(server, status: int) -> str:
    """The referee: what the stand-in answers a request carrying KEY (its body quotes the key)."""
    server.status = status
    request = urllib.request.Request(server.base_url + "/files", data=b"{}", headers={
        "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(request, timeout=10)
    assert answered.value.code == status
    return answered.value.read().decode()


@pytest.mark.parametrize("status", [401, 403])
def test_a_key_echoed_by_the_endpoint_is_in_no_file_and_not_in_the_error(openai_server, tmp_path, status):
    openai_server.echo_key_in_errors = True
    assert KEY in echoed_body(openai_server, status)
    run_dir = tmp_path / "run"
    result = openai_ft.run_job(spec_for(tmp_path, openai_server), run_dir, EventWriter(run_dir), api_key=KEY)
    assert result["status"] == "failed" and result["error"]
    assert openai_server.auth_headers[-1] == f"Bearer {KEY}"  # the key did go out, and came back quoted
    assert KEY not in result["error"]
    events = (run_dir / "events.jsonl").read_text(encoding="utf-8")
    assert str(status) in events or "rejected" in events
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path.name


def test_the_worker_process_path_writes_no_echoed_key(openai_server, tmp_path, monkeypatch, capfd):
    """Through the worker's entry point, as `python -m ftassist.train.worker RUN_DIR` runs it: the key
    comes from the environment and the worker's own output (its worker.log) is captured here."""
    from ftassist.train import worker

    openai_server.echo_key_in_errors = True
    assert KEY in echoed_body(openai_server, 401)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("FTASSIST_OPENAI_POLL_INTERVAL", "0.01")
    run_dir = tmp_path / "run"
    spec = spec_for(tmp_path, openai_server)
    spec.save(run_dir)
    capfd.readouterr()  # only the worker's own output from here on
    assert worker.main([str(run_dir)]) == 1
    log = capfd.readouterr()
    assert KEY not in log.out + log.err
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events[-1]["type"] == "failed" and KEY not in json.dumps(events)
    assert openai_server.auth_headers[-1] == f"Bearer {KEY}"
