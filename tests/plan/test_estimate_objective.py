"""The Estimate step takes its objective from the session when the person has not said: a checked file of
preference pairs estimates DPO, chats SFT, and without data the Decide recommendation decides; the Estimate
tab's "What to train" follows the same rule, once per change of the data or the advice."""

from __future__ import annotations

import json

import pytest

from ftassist.ui import estimate as estimate_tab
from ftassist.usecases import data, planning
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Dataset, Session

OPENAI_AND_LORA = {"openai_models": ["gpt-4.1-mini-2025-04-14"], "base_models": ["Qwen/Qwen2.5-0.5B"],
                   "methods": ["lora"], "gpus": ["T4"], "allow_network": False, "local_gpus": []}


def _pair(i: int) -> dict:
    return {"prompt": [{"role": "user", "content": f"Where is parcel {i}?"}],
            "chosen": [{"role": "assistant", "content": f"Parcel {i} leaves the depot tomorrow at nine."}],
            "rejected": [{"role": "assistant", "content": f"No idea about parcel {i}."}]}


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Where is parcel {i}?"},
                         {"role": "assistant", "content": f"Parcel {i} leaves the depot tomorrow."}]}


def _write(folder, name: str, rows: list[dict]):
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _checked(ctx: Context, path) -> Session:
    checked = data.check_dataset(ctx, str(path))
    return Session().checked(Dataset(checked.path, checked.report))


def _decided(ctx: Context, session: Session, **answers) -> Session:
    base = {"style_or_format": True, "tried_prompting": True, "n_examples": 800}
    return session.decided(planning.recommend_approach(ctx, {**base, **answers}).decision)


@pytest.fixture
def ctx(ftassist_home):
    return Context.open()


def test_a_checked_preference_file_makes_the_estimate_dpo(ctx, ftassist_home):
    session = _checked(ctx, _write(ftassist_home, "pairs.jsonl", [_pair(i) for i in range(12)]))
    assert session.report["format"] == "preference"
    choice = planning.default_objective(session)
    assert (choice.objective, choice.why) == ("dpo", "the checked dataset holds preference pairs")
    result = planning.estimate_options(ctx, session, options=OPENAI_AND_LORA)  # no objective given
    assert result.objective == "dpo" and result.objective_why == "the checked dataset holds preference pairs"
    inputs = result.table.inputs
    assert inputs["objective"] == "dpo" and inputs["pairs"] and inputs["n_examples"] == 12
    assert all(row.objective == "dpo" for row in result.table.rows)
    # Said explicitly, the objective is the person's: SFT on pairs is refused with why, not priced as chats.
    with pytest.raises(UseCaseError, match="holds preference pairs: estimate them with the objective dpo"):
        planning.estimate_options(ctx, session, options={**OPENAI_AND_LORA, "objective": "sft"})


def test_the_split_of_a_preference_file_is_estimated_as_pairs(ctx, ftassist_home):
    session = _checked(ctx, _write(ftassist_home, "pairs.jsonl", [_pair(i) for i in range(20)]))
    cleaned = data.clean_dataset(ctx, session.dataset.path, valid_fraction=0.25, seed=1)
    session = session.split_into(data.split_of(cleaned))
    result = planning.estimate_options(ctx, session, options=OPENAI_AND_LORA)
    assert result.objective == "dpo" and result.table.inputs["n_examples"] == cleaned.n_train < 20


def test_chats_stay_sft_even_when_the_decide_step_recommends_sft_then_dpo(ctx, ftassist_home):
    session = _checked(ctx, _write(ftassist_home, "chats.jsonl", [_chat(i) for i in range(12)]))
    session = _decided(ctx, session, has_preference_data=True, model_does_task=False)
    assert (session.decision.recommendation["objective"], session.decision.recommendation["then_objective"]) == \
        ("sft", "dpo")
    choice = planning.default_objective(session)
    assert (choice.objective, choice.then_objective) == ("sft", "dpo")
    result = planning.estimate_options(ctx, session, options=OPENAI_AND_LORA)
    assert result.objective == "sft" and not result.table.inputs.get("pairs")
    assert any("SFT first, then DPO" in w for w in result.warnings)


def test_without_data_the_decide_recommendation_decides(ctx):
    session = _decided(ctx, Session(), has_preference_data=True, model_does_task=True)
    assert session.decision.recommendation["objective"] == "dpo"
    result = planning.estimate_options(ctx, session, n_examples=500, avg_tokens=800, options=OPENAI_AND_LORA)
    assert result.objective == "dpo" and result.objective_why == "the Decide step recommends it"
    assert result.table.inputs["pairs"] and result.table.inputs["n_examples"] == 500
    plain = planning.estimate_options(ctx, Session(), n_examples=500, avg_tokens=800, options=OPENAI_AND_LORA)
    assert plain.objective == "sft"


def test_a_file_given_by_path_decides_for_itself(ctx, ftassist_home, tmp_path):
    pairs = _write(ftassist_home, "given.jsonl", [_pair(i) for i in range(5)])
    result = planning.estimate_options(ctx, path=str(pairs), options=OPENAI_AND_LORA)
    assert result.objective == "dpo" and result.objective_why == "given.jsonl holds preference pairs"
    assert result.table.inputs["n_examples"] == 5
    # the app reads only its own files, whichever objective would read it
    outside = _write(tmp_path, "outside.jsonl", [_pair(i) for i in range(5)])
    app = Context.open(reads_any_file=False)
    with pytest.raises(UseCaseError, match="reads only files uploaded to it"):
        planning.estimate_options(app, path=str(outside), options={**OPENAI_AND_LORA, "objective": "dpo"})


def test_the_estimate_tab_sets_what_to_train_once_per_change(ctx, ftassist_home, monkeypatch):
    from ftassist import config

    chats = _checked(ctx, _write(ftassist_home, "chats.jsonl", [_chat(i) for i in range(6)]))
    radio, why, key = estimate_tab.objective_prefill(chats, None)
    assert radio["value"] == "sft" and why.startswith("SFT: the checked dataset holds chats")
    pairs = _checked(ctx, _write(ftassist_home, "pairs.jsonl", [_pair(i) for i in range(6)]))
    radio, why, key = estimate_tab.objective_prefill(pairs, key)
    assert radio["value"] == "dpo" and why == "DPO: the checked dataset holds preference pairs."
    # a change that leaves the data and the advice alone (a run selected) keeps what the person ticked
    unchanged, why_unchanged, same = estimate_tab.objective_prefill(pairs.selected_run("some-run"), key)
    assert same == key and "value" not in unchanged and "value" not in why_unchanged
    # the tab's handler then prices the pairs as pairs, with what the radio says
    monkeypatch.setattr(config, "detect_hardware", lambda refresh=False: {"cuda": False, "gpus": [], "source": "none"})
    out = estimate_tab.estimate_handler(ctx, pairs, True, None, None, None, "", ["gpt-4.1-mini-2025-04-14"], "auto",
                                        None, None, None, "Qwen/Qwen2.5-0.5B", ["lora"], None, ["T4"], None, 1, True,
                                        16, 0.3, 0, False, radio["value"])
    assert "6 preference pairs" in out[0] and out[7].option["objective"] == "dpo"


def test_the_decide_tab_says_a_checked_file_holds_preference_pairs(ctx, ftassist_home):
    from ftassist.ui import decide

    pairs = _checked(ctx, _write(ftassist_home, "pairs.jsonl", [_pair(i) for i in range(6)]))
    assert decide.dataset_status(pairs).startswith("Using your checked dataset: 6 preference pairs")
    chats = _checked(ctx, _write(ftassist_home, "chats.jsonl", [_chat(i) for i in range(6)]))
    assert decide.dataset_status(chats).startswith("Using your checked dataset: 6 valid examples")
