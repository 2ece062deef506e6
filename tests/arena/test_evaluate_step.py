"""The Evaluate step: the measures against hand-computed values, intervals, the per-class table, the forgetting
check on the shipped general questions, the overfitting signal, the people's and the judge's records, the
verdict sentence, what is stored, the default data and `ftassist eval --json`."""

from __future__ import annotations

import hashlib
import json
import math
import uuid

import pytest

from ftassist.arena import metrics
from ftassist.cli import main
from ftassist.usecases import arena as arena_cases
from ftassist.usecases import evaluation
from ftassist.usecases.context import UseCaseError
from ftassist.usecases.session import Session, Split

LABELS = ["positive", "negative", "positive", "negative", "positive", "negative"]
TUNED = {"review 0": "Positive.", "review 1": "negative", "review 2": "positive", "review 3": "positive",
         "review 4": "Positive", "review 5": "Negative!"}  # right on all but review 3


def _general_answers() -> dict[str, str]:
    """The shipped general questions and their reference answers."""
    out = {}
    for example in metrics.forgetting_examples():
        prompt, reference = metrics.split_prompt_reference(example)
        out[prompt[-1]["content"]] = reference
    return out


@pytest.fixture
def labelled(tmp_path):
    path = tmp_path / "test.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"review {i}"}, {"role": "assistant", "content": label}]}
            for i, label in enumerate(LABELS)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def register_api_models(ctx, fake_llm) -> None:
    """"api base" and "api tuned" on the OpenAI stand-in: the tuned one answers TUNED's labels and has forgotten
    the last 10 general questions; the base one knows every general answer and nothing of the task."""
    general = _general_answers()
    questions = list(general)

    def tuned(messages):
        asked = messages[-1]["content"]
        if asked in TUNED:
            return TUNED[asked]
        return general[asked] if questions.index(asked) < 30 else "positive"  # forgot the last 10 questions

    def base(messages):
        asked = messages[-1]["content"]
        return general.get(asked, "I think it is fine")

    fake_llm.answers["tuned"], fake_llm.answers["base"] = tuned, base
    for model in ("base", "tuned"):
        arena_cases.register_model(ctx, "openai_compatible", f"api {model}", {"base_url": fake_llm.base_url,
                                                                               "model": model})


@pytest.fixture
def api_models(ctx, fake_llm):
    register_api_models(ctx, fake_llm)
    return fake_llm


def _votes_csv(tmp_path, wins: int, losses: int):
    path = tmp_path / "votes.csv"
    lines = ["model_a,model_b,winner"] + ["api tuned,api base,model_a"] * wins + ["api tuned,api base,model_b"] * losses
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the measures by hand ----------------------------------------------------------------------------------
def test_per_class_table_by_hand():
    predictions = [TUNED[f"review {i}"] for i in range(6)] + ["maybe"]
    rows = {r["label"]: r for r in metrics.per_class_table(predictions, LABELS + ["negative"])}
    # positive: 3 examples; predicted for reviews 0, 2, 3, 4; right on 0, 2, 4
    assert rows["positive"] == {"label": "positive", "n": 3, "predicted": 4, "correct": 3, "recall": 1.0,
                                "precision": 0.75, "f1": pytest.approx(2 * 0.75 / 1.75)}
    # negative: 4 examples (the extra one answered "maybe"); predicted twice, both right
    assert rows["negative"]["n"] == 4 and rows["negative"]["correct"] == 2
    assert rows["negative"]["recall"] == 0.5 and rows["negative"]["precision"] == 1.0
    assert rows["negative"]["f1"] == pytest.approx(2 * 0.5 / 1.5)
    assert rows["(other)"]["predicted"] == 1  # "maybe" is no label: every answer is accounted for


def test_bleu_from_sentence_statistics_is_sacrebleus_corpus_bleu():
    import sacrebleu

    predictions = ["the cat sat on the mat today", "a dog ran in the park", "hello there", "it is raining now"]
    references = ["the cat sat on the mat", "the dog ran in the big park", "hello there friend", "it rains now"]
    stats = metrics.bleu_statistics(predictions, references)
    summed = [sum(column) for column in zip(*stats)]
    assert metrics.bleu_from_statistics(summed) == pytest.approx(
        sacrebleu.corpus_bleu(predictions, [references]).score)


def test_intervals_by_hand():
    # n = 6 right on 5: a resample is Binomial(6, 5/6) sixths. P(all six right) = 0.33 > 2.5%, so the top is 1;
    # P(at most 2 right) = 0.9% < 2.5% < P(at most 3) = 6.2%, so the bottom is 3/6.
    rows = metrics.bootstrap_indices(6)
    assert metrics.mean_interval([1, 1, 1, 0, 1, 1], rows) == [0.5, 1.0]
    assert metrics.mean_interval([0.4] * 6, rows) == pytest.approx([0.4, 0.4])
    assert metrics.mean_interval([1, 0, 1, 0], metrics.bootstrap_indices(4)) is None  # too few examples
    # the token-weighted loss: every example 2 nats per token whatever its length -> the interval is [2, 2]
    assert metrics.loss_interval([(2.0 * n, n) for n in (1, 3, 5, 7, 9)], metrics.bootstrap_indices(5)) == \
        pytest.approx([2.0, 2.0])


def test_answer_matches_whole_words():
    assert metrics.answer_matches("The capital of France is Paris.", ["Paris"])
    assert metrics.answer_matches("It has 8 legs", ["8", "eight"])
    assert not metrics.answer_matches("It has 18 legs", ["8", "eight"])
    assert metrics.answer_matches("the Amazon river", ["The Amazon"])


def test_overfitting_signal_from_the_events_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    events = [{"type": "started", "ts": 1}, {"type": "log", "ts": 2, "step": 10, "loss": 2.0},
              {"type": "eval", "ts": 3, "step": 10, "eval_loss": 1.8}, {"type": "log", "ts": 4, "step": 20, "loss": 1.0},
              {"type": "eval", "ts": 5, "step": 20, "eval_loss": 1.5}, {"type": "log", "ts": 6, "step": 30, "loss": 0.4},
              {"type": "eval", "ts": 7, "step": 30, "eval_loss": 1.7}]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    signal = metrics.overfitting_signal(run)
    assert signal["overfitting"] is True  # 1.7 > 1.5 * 1.05 while the train loss fell to 0.4
    assert (signal["train_loss"], signal["eval_loss"], signal["best_eval_loss"]) == (0.4, 1.7, 1.5)
    assert signal["best_eval_step"] == 20 and signal["gap"] == pytest.approx(1.3)
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events[:5]) + "\n", encoding="utf-8")
    assert metrics.overfitting_signal(run)["overfitting"] is False
    (run / "events.jsonl").write_text(json.dumps(events[1]) + "\n", encoding="utf-8")
    no_valid = metrics.overfitting_signal(run)
    assert no_valid["overfitting"] is None and "no validation" in no_valid["note"]
    assert metrics.overfitting_signal(None)["overfitting"] is None


def test_the_shipped_general_questions():
    examples = metrics.forgetting_examples()
    assert 30 <= len(examples) <= 50
    for example in examples:
        prompt, reference = metrics.split_prompt_reference(example)
        assert prompt[-1]["role"] == "user" and reference.strip()


# -- the whole step ------------------------------------------------------------------------------------
def test_evaluate_step_hand_computed_stored_and_told(ctx, labelled, api_models, tmp_path):
    from scipy import stats

    imported = arena_cases.import_votes(ctx, str(_votes_csv(tmp_path, wins=7, losses=3)))
    assert imported.imported == 10
    result = evaluation.evaluate_models(ctx, ["api base", "api tuned"], str(labelled), rounds=1000)
    assert (result.n_scored, result.labels) == (6, True)
    base, tuned = result.models
    assert tuned.exact_match == pytest.approx(5 / 6) and base.exact_match == 0.0
    assert tuned.rouge_l == pytest.approx(5 / 6) and base.rouge_l == 0.0
    assert tuned.bleu == 0.0 and base.bleu == 0.0  # one-word answers have no 4-gram
    assert tuned.intervals["exact_match"] == [0.5, 1.0]  # by hand: see test_intervals_by_hand
    assert tuned.intervals["bleu"] == [0.0, 0.0] and base.intervals["exact_match"] == [0.0, 0.0]
    positive = next(c for c in tuned.per_class if c["label"] == "positive")
    assert (positive["n"], positive["predicted"], positive["correct"]) == (3, 4, 3)
    assert [c["label"] for c in base.per_class] == ["negative", "positive", "(other)"]

    # the forgetting check: the base answers all 40 general questions, the tuned model 30 of them
    forgetting = tuned.forgetting
    assert (forgetting["base_accuracy"], forgetting["tuned_accuracy"]) == (1.0, 0.75)
    assert forgetting["accuracy_change"] == pytest.approx(-0.25) and forgetting["forgot"] is True
    low, high = forgetting["accuracy_change_interval"]
    assert low <= -0.25 <= high < 0
    assert base.forgetting is None

    # the people: 7 wins in 10 votes against the base, with scipy's Wilson interval
    ci = stats.binomtest(7, 10).proportion_ci(method="wilson")
    assert tuned.human["win_rate"] == 0.7 and tuned.human["votes"] == 10
    assert (tuned.human["win_rate_low"], tuned.human["win_rate_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert tuned.judge is None and base.human is None
    assert tuned.verdict == (
        "api tuned: better than the base on 2 of 3 measures (ROUGE-L, exact match); humans prefer it 70% of the "
        "time (40-89%, 10 votes); general answers got much worse (75% right vs 100% for the base, on 40 "
        "general questions).")
    assert base.verdict is None and tuned.overfitting["overfitting"] is None

    # stored with the model, the data's hash and the generation settings
    digest = hashlib.sha256(labelled.read_bytes()).hexdigest()
    assert result.data_hash == digest
    (stored_hash, sampling, n_scored), = ctx.store.query_rows(
        "SELECT data_hash, sampling_json, n_scored FROM evaluations WHERE id = ?", [result.id])
    assert stored_hash == digest and n_scored == 6
    assert json.loads(sampling) == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 256, "seed": 0}
    history = evaluation.evaluation_history(ctx, model="api tuned")
    assert len(history) == 1 and history[0].verdict == tuned.verdict and history[0].base == "api-base"
    assert history[0].measures["exact_match"] == pytest.approx(5 / 6)
    assert history[0].measures["intervals"]["exact_match"] == [0.5, 1.0]
    assert len(evaluation.evaluation_history(ctx)) == 2


def test_the_judge_beside_the_people(ctx, labelled, api_models):
    store = ctx.store
    outcomes = [("model_a", "model_a"), ("model_a", "model_a"), ("model_b", "model_a"), ("model_b", "model_b")]
    for judged, voted in outcomes:  # battles tuned (A) vs base (B): the judge and one voter on each
        battle = uuid.uuid4().hex
        store.execute("INSERT INTO battles (id, prompt, model_a, model_b, answer_a, answer_b) VALUES (?, 'q', "
                      "'api-tuned', 'api-base', 'a', 'b')", [battle])
        store.execute("INSERT INTO judge_verdicts (id, battle_id, judge_model, winner) VALUES (?, ?, 'judge', ?)",
                      [uuid.uuid4().hex, battle, judged])
        store.execute("INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner) VALUES (?, ?, 'v1', "
                      "'api-tuned', 'api-base', ?)", [uuid.uuid4().hex, battle, voted])
    result = evaluation.evaluate_models(ctx, ["api base", "api tuned"], str(labelled), rounds=200)
    tuned = result.models[1]
    assert (tuned.judge["wins"], tuned.judge["losses"], tuned.judge["win_rate"]) == (2, 2, 0.5)
    assert (tuned.human["wins"], tuned.human["losses"]) == (3, 1)
    assert result.judge_agreement["agreement"] == 0.75 and result.judge_agreement["n_pairs"] == 4


def test_verdict_sentence_without_votes_reads_the_judge():
    base = {"rouge_l": 0.2, "bleu": 10.0, "exact_match": 0.1, "perplexity": 9.0}
    tuned = {"rouge_l": 0.5, "bleu": 30.0, "exact_match": 0.4, "perplexity": 6.0, "human": None,
             "judge": {"win_rate": 0.8, "win_rate_low": 0.62, "win_rate_high": 0.9, "votes": 20},
             "forgetting": {"accuracy_change": -0.05, "base_accuracy": 0.9, "tuned_accuracy": 0.85, "n_prompts": 40,
                            "ratio": 1.02, "forgot": False},
             "overfitting": {"overfitting": True}}
    assert evaluation.verdict_sentence(tuned, base) == (
        "better than the base on 4 of 4 measures; no human votes yet; the LLM judge prefers it 80% of the time "
        "(62-90%); general answers got slightly worse (85% right vs 90% for the base, on 40 general questions); "
        "its validation loss rose late in training (a sign of overfitting: fewer epochs may do better).")


# -- which data --------------------------------------------------------------------------------------------
def test_default_data_is_the_test_split_else_the_validation_split(ctx, tmp_path):
    folder = tmp_path / "split"
    folder.mkdir()
    for name in ("train", "valid", "test"):
        (folder / f"{name}.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    with_test = Session(split=Split(train=str(folder / "train.jsonl"), valid=str(folder / "valid.jsonl"),
                                    folder=str(folder), n_train=8, n_valid=1, test=str(folder / "test.jsonl"),
                                    n_test=1))
    path, what = evaluation.default_data(ctx, with_test)
    assert path == str(folder / "test.jsonl") and "never seen in training" in what
    without = Session(split=Split(train=str(folder / "train.jsonl"), valid=str(folder / "valid.jsonl"),
                                  folder=str(folder), n_train=8, n_valid=1))
    path, what = evaluation.default_data(ctx, without)
    assert path == str(folder / "valid.jsonl") and "no test split" in what
    with pytest.raises(UseCaseError, match="No held-out data"):
        evaluation.default_data(ctx, Session())


def test_evaluate_uses_the_sessions_split_and_says_so(ctx, labelled, api_models):
    session = Session(split=Split(train=str(labelled), valid=str(labelled), folder=str(labelled.parent),
                                  n_train=6, n_valid=6))
    result = evaluation.evaluate_models(ctx, ["api base", "api tuned"], session=session, rounds=100)
    assert result.data == str(labelled) and "validation split" in result.data_source


# -- the command -------------------------------------------------------------------------------------------
def test_eval_json_has_every_measure_its_interval_and_the_verdict(labelled, api_models, capsys):
    assert main(["eval", "--models", "api base,api tuned", "--data", str(labelled), "--json", "--rounds", "200"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["model"] for r in rows] == ["api-base", "api-tuned"]
    tuned = rows[1]
    for measure in ("rouge_l", "bleu", "exact_match", "loss", "perplexity"):
        assert measure in tuned
    assert set(tuned["intervals"]) == {"rouge_l", "bleu", "exact_match"}  # API models: no loss to bound
    assert tuned["exact_match"] == pytest.approx(5 / 6) and tuned["verdict"].startswith("api tuned: better")
    assert tuned["data_hash"] == hashlib.sha256(labelled.read_bytes()).hexdigest()
    assert tuned["base"] == "api-base" and tuned["sampling"]["temperature"] == 0.0
    assert main(["eval", "--models", "api base,api tuned", "--data", str(labelled), "--rounds", "50"]) == 0
    text = capsys.readouterr().out
    assert "verdict: api tuned: better" in text and "per class: negative" in text


# -- local models: loss intervals and the run's losses ------------------------------------------------------
def test_local_models_loss_interval_forgetting_perplexity_and_overfitting(ctx, tiny_model_dir, tiny_adapter_dir,
                                                                         tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    events = [{"type": "log", "step": 1, "loss": 3.0}, {"type": "eval", "step": 1, "eval_loss": 2.0},
              {"type": "log", "step": 2, "loss": 1.0}, {"type": "eval", "step": 2, "eval_loss": 2.5}]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    arena_cases.register_model(ctx, "hf", "tiny base", {"model": str(tiny_model_dir)})
    arena_cases.register_model(ctx, "hf_adapter", "tiny tuned", {"base_model": str(tiny_model_dir),
                                                                 "adapter_dir": str(tiny_adapter_dir),
                                                                 "run_dir": str(run)})
    data = tmp_path / "held.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"What is the capital number {i}?"},
                                                      {"role": "assistant", "content": "The capital of France is Paris."}]})
                              for i in range(5)) + "\n", encoding="utf-8")
    result = evaluation.evaluate_models(ctx, ["tiny base", "tiny tuned"], str(data), max_new_tokens=4, rounds=200)
    base, tuned = result.models
    for scores in (base, tuned):
        low, high = scores.intervals["loss"]
        assert low <= scores.loss <= high
        assert scores.intervals["perplexity"] == pytest.approx([math.exp(low), math.exp(high)])
    forgetting = tuned.forgetting
    assert forgetting["ratio"] == pytest.approx(forgetting["tuned_perplexity"] / forgetting["base_perplexity"])
    assert forgetting["n_prompts"] == len(metrics.forgetting_examples())
    assert tuned.overfitting["overfitting"] is True and base.overfitting["overfitting"] is None
    assert "overfitting" in tuned.verdict and "of 4 measures" in tuned.verdict
