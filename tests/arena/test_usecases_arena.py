"""The arena's use cases: the add-time check, rename, remove (votes kept), the model of a run,
the CLI while the app holds the store, and evaluate_models against hand-computed figures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ftassist.arena import battles, export, models
from ftassist.cli import main
from ftassist.usecases import arena as arena_cases
from ftassist.usecases import evaluation
from ftassist.usecases.context import NotFound, UseCaseError
from ftassist.usecases.session import Session

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_limits():
    battles.rate_limiter.reset()
    yield
    battles.rate_limiter.reset()


def _timed(fn, *args, **kwargs):
    start = time.monotonic()
    try:
        return fn(*args, **kwargs), time.monotonic() - start
    except UseCaseError as exc:
        return exc, time.monotonic() - start


# -- the check when a model is added ------------------------------------------------------------
def test_a_local_model_that_cannot_load_is_refused_quickly(ctx, tmp_path):
    missing = tmp_path / "no-model-here"
    refused, seconds = _timed(arena_cases.register_model, ctx, "hf", "Ghost", {"model": str(missing)})
    assert isinstance(refused, UseCaseError) and "Not added" in str(refused) and "Could not load" in str(refused)
    assert seconds < 10
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UseCaseError, match="no config.json"):
        arena_cases.register_model(ctx, "hf", "Empty", {"model": str(empty)})
    assert arena_cases.list_models(ctx) == []


def test_a_local_model_that_loads_is_registered(ctx, tiny_model_dir):
    added = arena_cases.register_model(ctx, "hf", "Tiny", {"model": str(tiny_model_dir)})
    assert (added.id, added.kind, added.display_name) == ("tiny", "hf", "Tiny")
    assert [m.id for m in arena_cases.list_models(ctx)] == ["tiny"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_server():
    """Accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_an_endpoint_that_does_not_answer_is_refused_within_seconds(ctx, silent_server, monkeypatch):
    assert models.CHECK_TIMEOUT_S <= 10  # the person waits seconds, never minutes
    refused, seconds = _timed(arena_cases.register_model, ctx, "openai_compatible", "Closed",
                              {"base_url": f"http://127.0.0.1:{_closed_port()}/v1", "model": "m"})
    assert isinstance(refused, UseCaseError) and "did not answer" in str(refused) and "Connection" in str(refused)
    assert seconds < 5
    monkeypatch.setattr(models, "CHECK_TIMEOUT_S", 1.0)
    refused, seconds = _timed(arena_cases.register_model, ctx, "openai_compatible", "Hung",
                              {"base_url": silent_server, "model": "m", "max_retries": 4})
    assert isinstance(refused, UseCaseError) and "Timeout" in str(refused)
    assert seconds < 4  # one try with the check's timeout: no retries, whatever the config says
    assert arena_cases.list_models(ctx) == []


def test_endpoint_check_names_the_reason_and_masks_the_key(ctx, fake_llm, monkeypatch):
    with pytest.raises(UseCaseError, match="The server offers: base, judge, tuned"):
        arena_cases.register_model(ctx, "openai_compatible", "Typo", {"base_url": fake_llm.base_url, "model": "bsae"})
    fake_llm.expected_key = "the-right-key-0000"
    monkeypatch.setenv("ARENA_CHECK_KEY", "a-wrong-key-98765")
    with pytest.raises(UseCaseError) as refused:
        arena_cases.register_model(ctx, "openai_compatible", "Keyed", {"base_url": fake_llm.base_url, "model": "base",
                                                                       "api_key_env": "ARENA_CHECK_KEY"})
    assert "AuthenticationError" in str(refused.value) and "a-wrong-key-98765" not in str(refused.value)
    monkeypatch.delenv("ARENA_CHECK_KEY")
    with pytest.raises(UseCaseError, match="ARENA_CHECK_KEY is not set"):
        arena_cases.register_model(ctx, "openai_compatible", "Keyed", {"base_url": fake_llm.base_url, "model": "base",
                                                                       "api_key_env": "ARENA_CHECK_KEY"})
    fake_llm.expected_key = None
    asked = len(fake_llm.requests)
    added = arena_cases.register_model(ctx, "openai_compatible", "Served", {"base_url": fake_llm.base_url,
                                                                            "model": "base"})
    assert added.id == "served" and len(fake_llm.requests) == asked  # listed by the server: no token spent


def test_an_endpoint_without_a_model_list_is_asked_for_one_token(ctx, fake_llm):
    fake_llm.models = ["listed"]
    fake_llm.any_model = True  # answers any model name, lists only one
    added = arena_cases.register_model(ctx, "openai_compatible", "Unlisted", {"base_url": fake_llm.base_url,
                                                                              "model": "unlisted"})
    assert added.id == "unlisted"
    assert len(fake_llm.requests) == 1 and fake_llm.requests[0]["max_tokens"] == 1


# -- rename and remove --------------------------------------------------------------------------
def _vote(store, battle_id: str, voter: str, choice: str) -> None:
    prompt, a, b = store.query_rows("SELECT prompt, answer_a, answer_b FROM battles WHERE id = ?", [battle_id])[0]
    view = battles._serve(store, battle_id, prompt, a, b, voter=voter)
    battles.vote(store, view.token, voter, choice)


def test_rename_keeps_the_votes_on_the_model(ctx, store):
    models.add_model(store, "hf", "Base", {"model": "org/base"})
    models.add_model(store, "hf", "Tuned", {"model": "org/tuned"})
    bid = battles.add_battle(store, "Q?", "tuned", "base", "one answer", "another answer")
    _vote(store, bid, "u1", "tie")
    renamed = arena_cases.rename_model(ctx, "Tuned", "Tuned v2")
    assert (renamed.id, renamed.display_name) == ("tuned", "Tuned v2")
    board = arena_cases.leaderboard(ctx, rounds=0)
    assert {r["model"] for r in board.rows} == {"Base", "Tuned v2"} and board.votes == 1
    with pytest.raises(UseCaseError, match="already registered"):
        arena_cases.rename_model(ctx, "tuned", "base")
    with pytest.raises(NotFound):
        arena_cases.rename_model(ctx, "nobody", "x")


def test_remove_keeps_the_votes_and_marks_them(ctx, store):
    for name in ("Base", "Tuned", "Other"):
        models.add_model(store, "hf", name, {"model": f"org/{name.lower()}"})
    with_tuned = battles.add_battle(store, "Q1?", "tuned", "base", "one answer", "another answer")
    without = battles.add_battle(store, "Q2?", "other", "base", "a third answer", "a fourth answer")
    for voter in ("u1", "u2", "u3"):
        _vote(store, with_tuned, voter, "A")
    _vote(store, without, "u1", "B")

    removed = arena_cases.remove_model(ctx, "Tuned")
    assert (removed.id, removed.votes_kept) == ("tuned", 3)
    assert [m.id for m in arena_cases.list_models(ctx)] == ["base", "other"]
    assert [m.id for m in arena_cases.list_models(ctx, include_removed=True) if m.removed_at] == ["tuned"]
    # the votes stay, and say they name a removed model
    table = export.votes_table(store)
    assert len(table) == 4
    marked = table[table["model_a_id"] == "tuned"]
    assert len(marked) + len(table[table["model_b_id"] == "tuned"]) == 3
    assert table["model_a_removed"].sum() + table["model_b_removed"].sum() == 3
    # the leaderboard keeps rating it, marked (the stated rule: votes count, the name says removed)
    names = {r["model"]: r for r in arena_cases.leaderboard(ctx, rounds=0).rows}
    assert set(names) == {"Tuned (removed)", "Base", "Other"} and names["Tuned (removed)"]["votes"] == 3
    # battles with it are no longer served; the others are
    served = [battles.next_battle(store, "fresh") for _ in range(2)]
    assert served[0] is not None and served[0].prompt == "Q2?"
    assert arena_cases.next_battle(ctx, "fresh2").prompt == "Q2?"
    # nor is it picked for a voter's own prompt, nor for a new run of battles
    with pytest.raises(NotFound):
        arena_cases.generate_battles(ctx, ["tuned", "base"], "unused.txt")
    with pytest.raises(NotFound):
        arena_cases.remove_model(ctx, "tuned")
    assert arena_cases.arena_counts(ctx) == arena_cases.ArenaCounts(
        models=2, removed_models=1, battles=2, flagged_battles=0, votes=4, voters=3, flagged_voters=0)


# -- the model a run produced ----------------------------------------------------------------------
def _job(store, job_id: str, status: str, run_dir: Path) -> None:
    store.execute("INSERT INTO jobs (id, backend, base_model, method, status, run_dir) VALUES (?, 'local', 'm', "
                  "'lora', ?, ?)", [job_id, status, str(run_dir)])


def test_register_run_model_takes_the_selected_succeeded_run(ctx, store, tmp_path, tiny_model_dir,
                                                             tiny_adapter_dir):
    good = tmp_path / "run-good"
    good.mkdir()
    (good / "spec.json").write_text(json.dumps({"backend": "local", "base_model": str(tiny_model_dir)}))
    (good / "events.jsonl").write_text(json.dumps({"type": "finished", "output_dir": str(tiny_adapter_dir)}) + "\n")
    _job(store, "job-good", "succeeded", good)
    time.sleep(0.01)
    _job(store, "job-cancelled", "cancelled", tmp_path / "run-cancelled")  # the latest job, not the selected one

    with pytest.raises(UseCaseError, match="job-cancelled is cancelled"):
        arena_cases.register_run_model(ctx, "job-cancelled")
    with pytest.raises(NotFound):
        arena_cases.register_run_model(ctx, "job-missing")
    with pytest.raises(UseCaseError, match="No run selected"):
        arena_cases.register_run_model(ctx, "")

    # the Arena's "Add the model I trained" registers the run the session selected
    from ftassist.ui import arena as arena_tab

    session = Session().selected_run("job-good")
    new_session, table, *_ = arena_tab._add_trained_model(ctx, session.to_dict())
    row = models.get_model(store, "fine-tuned job-good")
    assert row["kind"] == "hf_adapter" and row["config"]["run_dir"] == str(good.resolve())
    assert new_session.model_ids == (row["id"],) and new_session.run_id == "job-good"
    assert [r[0] for r in table] == [row["id"]]


# -- the CLI while the app holds the store ----------------------------------------------------------
APP = """
import sys
from ftassist import app_socket
from ftassist.arena import models
from ftassist.usecases.context import Context

ctx = Context.open()
models.add_model(ctx.store, "hf", "Held Model", {"model": "org/held"})
server = app_socket.serve(ctx)
print("serving", flush=True)
sys.stdin.read()  # until the test closes stdin
app_socket.stop(server)
"""


def test_arena_commands_go_through_the_running_app(ftassist_home, capsys):
    from ftassist import store as store_mod

    store_mod.reset_store()
    app = subprocess.Popen([sys.executable, "-c", APP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ))
    try:
        assert app.stdout.readline().strip() == "serving", app.stderr.read()
        assert main(["arena", "models"]) == 0  # the app owns the database; the command asks it
        assert "held-model\thf\tHeld Model" in capsys.readouterr().out
        assert main(["arena", "rename-model", "held-model", "Held Again"]) == 0
        assert main(["arena", "remove-model", "Held Again"]) == 0
        assert "0 vote(s) are kept" in capsys.readouterr().out
        assert main(["arena", "models", "--all", "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["display_name"] == "Held Again" and row["removed_at"]
        assert main(["arena", "remove-model", "nobody"]) == 2
        assert "No model 'nobody'" in capsys.readouterr().err
    finally:
        app.stdin.close()
        app.wait(timeout=60)


# -- evaluation --------------------------------------------------------------------------------------
EXAMPLES = [
    {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "the cat sat on the mat"}]},
    {"messages": [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "paris"}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q3 first"},
                  {"role": "assistant", "content": "earlier turn"}, {"role": "user", "content": "Q3 second"},
                  {"role": "assistant", "content": "blue sky today"}]},
]
ANSWERS = {"Q1": "the cat sat", "Q2": "Paris.", "Q3 second": "green grass"}


@pytest.fixture
def held_out(tmp_path) -> Path:
    path = tmp_path / "held_out.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in EXAMPLES) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def api_pair(ctx, fake_llm):
    # (other prompts are the forgetting check's general questions: neither model knows those)
    fake_llm.answers["tuned"] = lambda messages: ANSWERS.get(messages[-1]["content"], "no idea")
    fake_llm.answers["base"] = lambda messages: {"Q1": "the cat sat on the mat", "Q2": "paris",
                                                 "Q3 second": "blue sky today"}.get(messages[-1]["content"], "no idea")
    for model in ("base", "tuned"):
        arena_cases.register_model(ctx, "openai_compatible", f"api {model}", {"base_url": fake_llm.base_url,
                                                                               "model": model})
    return fake_llm


def test_evaluate_models_matches_hand_computed_figures(ctx, held_out, api_pair):
    result = evaluation.evaluate_models(ctx, ["api base", "api-tuned"], str(held_out))
    assert (result.n_examples, result.n_scored, result.labels) == (3, 3, False)
    assert result.references == ["the cat sat on the mat", "paris", "blue sky today"]
    base, tuned = result.models
    # base repeats every reference: everything perfect
    assert (base.rouge_l, base.exact_match, base.bleu) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(100.0))
    # tuned, by hand: ROUGE-L F1 per pair: "the cat sat" in "the cat sat on the mat": LCS 3, P 3/3, R 3/6 -> 2/3;
    # "Paris." vs "paris": 1; "green grass" vs "blue sky today": 0. Mean 5/9.
    assert tuned.rouge_l == pytest.approx(5 / 9)
    assert tuned.exact_match == pytest.approx(1 / 3)  # only "Paris." equals "paris" once normalised
    assert tuned.bleu == pytest.approx(0.0)  # no hypothesis has a 4-gram: corpus BLEU is 0
    assert (tuned.loss, tuned.perplexity) == (None, None) and "API model" in tuned.note
    assert tuned.predictions == ["the cat sat", "Paris.", "green grass"]
    # the prompt is every turn but the last assistant one
    sent = next(r for r in api_pair.requests if r["model"] == "tuned" and r["messages"][-1]["content"] == "Q3 second")
    assert [m["content"] for m in sent["messages"]] == ["Be brief.", "Q3 first", "earlier turn", "Q3 second"]
    assert sent["temperature"] == 0.0

    with pytest.raises(NotFound):
        evaluation.evaluate_models(ctx, ["nobody"], str(held_out))
    with pytest.raises(UseCaseError, match="No file"):
        evaluation.evaluate_models(ctx, ["api base"], str(held_out) + ".missing")


def test_eval_command_prints_one_json_object_per_model(held_out, api_pair, capsys):
    assert main(["eval", "--models", "api-base,api tuned", "--data", str(held_out), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["model"] for r in rows] == ["api-base", "api-tuned"]
    for row in rows:
        assert {"rouge_l", "bleu", "exact_match", "loss", "perplexity", "n_generated"} <= set(row)
    assert rows[1]["rouge_l"] == pytest.approx(5 / 9) and rows[1]["exact_match"] == pytest.approx(1 / 3)
    assert main(["eval", "--models", "api-base", "--data", str(held_out)]) == 0
    assert "api base" in capsys.readouterr().out


def _rouge_l_f1(prediction: str, reference: str) -> float:
    """An independent ROUGE-L F1 on lower-cased alphanumeric tokens (no stemming)."""
    import re

    p, r = (re.findall(r"[a-z0-9]+", text.lower()) for text in (prediction, reference))
    if not p or not r:
        return 0.0
    table = [[0] * (len(r) + 1) for _ in range(len(p) + 1)]
    for i, a in enumerate(p):
        for j, b in enumerate(r):
            table[i + 1][j + 1] = table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
    lcs = table[-1][-1]
    return 0.0 if lcs == 0 else 2 * lcs / (len(p) + len(r))


def test_evaluate_tiny_local_models(ctx, held_out, tiny_model_dir, tiny_adapter_dir):
    import math

    arena_cases.register_model(ctx, "hf", "tiny base", {"model": str(tiny_model_dir)})
    arena_cases.register_model(ctx, "hf_adapter", "tiny tuned", {"base_model": str(tiny_model_dir),
                                                                 "adapter_dir": str(tiny_adapter_dir)})
    result = evaluation.evaluate_models(ctx, ["tiny base", "tiny tuned"], str(held_out), max_new_tokens=6)
    base, tuned = result.models
    for scores in (base, tuned):
        assert scores.n_generated == 3 and len(scores.predictions) == 3
        assert math.isfinite(scores.loss) and scores.perplexity == pytest.approx(math.exp(scores.loss))
        assert scores.n_tokens > 0
        expected = sum(_rouge_l_f1(p, r) for p, r in zip(scores.predictions, result.references)) / 3
        assert scores.rouge_l == pytest.approx(expected, abs=0.05)  # stemming aside, the same figure
    assert base.forgetting is None
    assert tuned.forgetting["ratio"] == pytest.approx(tuned.forgetting["tuned_perplexity"]
                                                      / tuned.forgetting["base_perplexity"])
