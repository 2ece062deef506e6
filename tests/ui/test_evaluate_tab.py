"""The Evaluate tab's handlers: the pickers, the data it will use, an evaluation laid out (verdict, measures
beside the votes, per-class table, general questions, history) and the take-it-home buttons."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from ftassist.arena import models
from ftassist.ui import evaluate
from ftassist.usecases import arena as arena_cases
from ftassist.usecases.context import Context
from ftassist.usecases.session import Session, Split


@pytest.fixture
def app(ftassist_home):
    models.clear_cache()
    yield Context.open()
    models.clear_cache()


@pytest.fixture
def held_out(app):
    folder = app.settings.clean_dir / "split1"
    folder.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"review {i}"}, {"role": "assistant", "content": label}]}
            for i, label in enumerate(["positive", "negative"] * 3)]
    for name in ("train", "valid"):
        (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def pair(app, fake_llm):
    fake_llm.answers["tuned"] = lambda messages: "positive"
    fake_llm.answers["base"] = lambda messages: "maybe"
    base = arena_cases.register_model(app, "openai_compatible", "Base", {"base_url": fake_llm.base_url,
                                                                         "model": "base"}).id
    tuned = arena_cases.register_model(app, "openai_compatible", "Tuned", {"base_url": fake_llm.base_url,
                                                                           "model": "tuned"}).id
    return base, tuned


def test_pickers_and_the_data_note(app, pair, held_out):
    base, tuned = pair
    session = Session(model_ids=(tuned,))
    base_update, tuned_update, export_update = evaluate.model_choices(app, session)
    assert base_update["value"] == base and tuned_update["value"] == [tuned]
    assert export_update["choices"] == []  # API models have no weights here to export
    note = evaluate.data_note(app, Session())
    assert "validation split" in note and str(held_out / "valid.jsonl") in note
    split = Session(split=Split(train=str(held_out / "train.jsonl"), valid=str(held_out / "valid.jsonl"),
                                folder=str(held_out), n_train=6, n_valid=6, test=str(held_out / "train.jsonl"),
                                n_test=6))
    assert "the test split" in evaluate.data_note(app, split)


def test_an_evaluation_laid_out(app, pair, held_out):
    base, tuned = pair
    verdicts, measures, classes, general, history = evaluate.run_evaluation(
        app, Session(), base, [tuned], None, 6, 0.0, 16)
    assert "Tuned: better than the base on 2 of 3 measures" in verdicts and "no human votes yet" in verdicts
    assert list(measures["model"]) == ["Base (base)", "Tuned"]
    assert measures.loc[1, "exact match"].startswith("0.5 (")  # right on the 3 positives of 6
    assert measures.loc[1, "people prefer it (vs base)"] == "no votes yet"
    tuned_classes = classes[classes["model"] == "Tuned"].set_index("label")
    assert tuned_classes.loc["positive", "correct"] == 3 and tuned_classes.loc["negative", "correct"] == 0
    assert list(general["model"]) == ["Base", "Tuned"] and general.loc[1, "general questions right"].endswith("of 40")
    assert list(history["model"]) == ["Base", "Tuned"] and len(history.loc[0, "data sha256"]) == 12
    with pytest.raises(gr.Error, match="Pick the base model"):
        evaluate.run_evaluation(app, Session(), None, [tuned], None, 6, 0.0, 16)


def test_take_it_home_buttons(app, tmp_path, monkeypatch):
    from ftassist.train.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path / "tiny", ["A small model for the export test."])
    model = arena_cases.register_model(app, "hf", "Tiny whole", {"model": str(folder)}).id
    assert evaluate.model_choices(app, Session())[2]["value"] == model
    message = evaluate.export_model(app, model, "ollama")
    modelfile = app.settings.exports_dir / "Tiny-whole-ollama" / "Modelfile"
    assert str(modelfile) in message and f"\nFROM {folder}\n" in modelfile.read_text(encoding="utf-8")
    with pytest.raises(gr.Error, match="Pick the model"):
        evaluate.export_model(app, None, "merged")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(gr.Error, match="HF_TOKEN"):
        evaluate.push_model(app, model, "me/tiny", False, False)
