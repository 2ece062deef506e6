"""The Decide and Estimate tabs' handlers, called as their events call them, and the app still builds."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import pytest

from ftassist.data.report import ChecklistItem, DataReport, TokenStats
from ftassist.ui import decide, estimate
from ftassist.plan import estimate as est_station
from ftassist.usecases.session import Dataset, Decision, Session
from ftassist.usecases.context import Context


def _session_with_report(per=(100, 200, 300), failing=False) -> Session:
    report = DataReport(path="train.jsonl", n_records=len(per), n_examples=len(per), format="chat",
                        tokens=TokenStats("o200k_base", True, list(per), [10] * len(per), total=sum(per)),
                        checklist=[ChecklistItem("balanced", "Balanced", "fail" if failing else "pass", "")])
    return Session().checked(Dataset(path="train.jsonl", report=report.to_dict()))


def _answers(**kw):
    values = {"needs_current_info": False, "style_or_format": True, "domain_terminology": False, "n_examples": 500,
              "budget": "medium", "hardware": "consumer_gpu", "data_can_leave": True, "openai_customer": False,
              "high_volume": False, "tried_prompting": True, "model_does_task": False, "has_preference_data": False}
    values.update(kw)
    return [values[k] for k in decide.ANSWER_KEYS]


def test_recommend_handler_uses_session_report():
    md, session = decide.recommend_handler(Context.open(), Session(), *_answers())
    assert "QLoRA" in md and session.decision.method == "qlora"
    assert session.decision.recommendation["method"] == "qlora" and session.decision.answers["n_examples"] == 500
    md, session = decide.recommend_handler(Context.open(), _session_with_report(failing=True), *_answers(n_examples=None))
    assert md.startswith("### Fix the data first")
    assert session.decision.recommendation["facts"]["n_examples"] == 3 and session.dataset is not None  # others kept
    assert session.decision.headline.startswith("Fix the data first")
    assert "3 valid examples" in decide.dataset_status(session)
    assert "No dataset checked" in decide.dataset_status({})
    with pytest.raises(gr.Error):
        decide.recommend_handler(Context.open(), {}, *_answers(budget="infinite"))


def _estimate_args(session, **kw):
    args = dict(use_report=True, n_examples=1000, avg_tokens=500, output_tokens=None, pasted="", models=None,
                epochs="auto", training_price=None, input_price=None, output_price=None,
                base_model="Qwen/Qwen2.5-0.5B", methods=None, gpu_table=estimate.gpu_price_table(), gpus=None,
                seq_len=None, batch_size=1, gradient_checkpointing=True, lora_rank=16, mfu=0.35,
                requests_per_month=10000, only_fitting=False)
    args.update(kw)
    return [session, *args.values()]


def test_estimate_handler_quick_mode():
    out = estimate.estimate_handler(Context.open(), *_estimate_args({}, models=["gpt-3.5-turbo-0125"], epochs="1",
                                                    training_price=8, methods=["qlora"], gpus=["T4"]))
    summary, df, cost_df, mem_df, how, dropdown, table, session = out
    assert "1,000 examples, 500,000 tokens" in summary
    assert isinstance(df, pd.DataFrame) and list(df.columns) == estimate.est.DISPLAY_HEADERS
    row = table["rows"][0]
    assert row["training_cost_usd"] == pytest.approx(4.0)  # the seed example
    assert set(cost_df.columns) == {"option", "training cost (USD)", "kind"}
    assert {"needed", "GPU memory"} == set(mem_df["kind"])
    assert "$4.00" in how
    assert session.option["recommended"] is True
    assert dropdown.value == session.option["id"]


def test_estimate_handler_uses_checked_report_and_guide_preference(monkeypatch):
    from datetime import date

    from ftassist.plan import providers

    monkeypatch.setattr(providers, "today", lambda: date(2026, 11, 30))  # OpenAI still open to its customers
    from ftassist import config

    monkeypatch.setattr(config, "detect_hardware", lambda refresh=False: {"cuda": False, "gpus": [], "source": "none"})
    customer = _session_with_report().decided(Decision(answers={"openai_customer": True}, approach="fine_tune",
                                                       method="openai"))
    out = estimate.estimate_handler(Context.open(), *_estimate_args(customer))
    table, session = out[6], out[7]
    assert table["inputs"]["source"] == "report" and table["inputs"]["n_examples"] == 3
    assert session.option["kind"] == "openai" and session.option["available"]
    assert "suggested openai" in out[0]
    # the same preference from someone who is not an OpenAI customer: never an OpenAI row
    newcomer = _session_with_report().decided(Decision(answers={}, approach="fine_tune", method="openai"))
    table, chosen = estimate.estimate_handler(Context.open(), *_estimate_args(newcomer))[6:8]
    assert chosen.option["kind"] == "hf_jobs"  # no GPU here: a rented one (the catalogue GPUs are a comparison)
    assert all(not r["available"] and ("closed since 2026-07-02" in r["why"] or "shut down on" in r["why"])
               for r in table["rows"] if r["kind"] == "openai")
    # unticking "use the report" goes back to quick mode
    out = estimate.estimate_handler(Context.open(), *_estimate_args(session, use_report=False))
    assert out[6]["inputs"]["n_examples"] == 1000


def test_estimate_handler_gpu_price_edit_and_errors():
    table = estimate.gpu_price_table()
    table.loc[table["gpu"] == "L4", "USD per hour"] = 8.0
    out = estimate.estimate_handler(Context.open(), *_estimate_args({}, models=[], methods=["qlora"], gpus=["L4"], gpu_table=table))
    (row,) = [r for r in out[6]["rows"] if r["kind"] == "self_hosted"]  # beside the HF Jobs L4 flavors
    assert row["cost_usd"] == pytest.approx(row["hours"] * 8.0)
    with pytest.raises(gr.Error, match="Quick mode"):
        estimate.estimate_handler(Context.open(), *_estimate_args({}, n_examples=0))
    with pytest.raises(gr.Error, match="Unknown base model"):
        estimate.estimate_handler(Context.open(), *_estimate_args({}, base_model="not-a-model"))


def test_choose_handler():
    out = estimate.estimate_handler(Context.open(), *_estimate_args({}))
    table, session = out[6], out[7]
    other = next(r for r in table["rows"] if not r["recommended"] and est_station.choosable(r))
    msg, session = estimate.choose_handler(session, table, other["id"])
    assert session.option["id"] == other["id"] and other["label"] in msg
    msg, _ = estimate.choose_handler({}, None, None)
    assert "Estimate first" in msg
    with pytest.raises(gr.Error):
        estimate.choose_handler({}, table, "nope")


def test_tabs_build_with_named_endpoints():
    from ftassist.ui.context import UIContext

    with gr.Blocks() as demo:
        ctx = UIContext(session=gr.State(Session()))
        with gr.Tab("Decide"):
            decide.build(ctx)
        with gr.Tab("Estimate"):
            estimate.build(ctx)
    names = {d.api_name for d in demo.fns.values()}
    assert {"recommend", "estimate", "choose_estimate"} <= names


def test_whole_app_still_builds():
    from ftassist.ui.layout import build_app

    assert isinstance(build_app(), gr.Blocks)


def test_an_unavailable_option_is_neither_offered_nor_chosen():
    from ftassist.ui import estimate as tab

    open_row = {"id": "lora:x:T4", "label": "LoRA x on T4", "recommended": True, "cost_usd": 2.0, "fits": True,
                "available": True, "kind": "self_hosted", "method": "lora"}
    closed = {"id": "openai:gpt-4o-mini", "label": "OpenAI gpt-4o-mini (unavailable)", "recommended": False,
              "cost_usd": 1.0, "fits": None, "available": False, "why": "closed to new organisations",
              "kind": "openai", "method": "lora"}
    no_fit = dict(open_row, id="full:x:T4", fits=False, recommended=False)
    table = {"rows": [open_row, closed, no_fit]}
    assert [est_station.choosable(r) for r in table["rows"]] == [True, False, False]
    assert tab.option_choices(table) == [("★ LoRA x on T4", "lora:x:T4")]
    assert list(tab.cost_chart(table)["option"]) == ["LoRA x on T4"]
    with pytest.raises(gr.Error, match="closed to new organisations"):
        tab.choose_handler(Session(), table, "openai:gpt-4o-mini")


def test_every_gpu_ticked_keeps_the_catalogue_a_comparison(monkeypatch):
    from ftassist import config

    monkeypatch.setattr(config, "detect_hardware", lambda refresh=False: {"cuda": False, "gpus": [], "source": "none"})
    out = estimate.estimate_handler(Context.open(), *_estimate_args({}, gpus=list(estimate.hardware.gpu_catalogue())))
    table, session = out[6], out[7]
    assert session.option["backend"] == "hf-jobs"
    assert all(not r["available"] for r in table["rows"] if r["kind"] == "self_hosted")
    assert {"backend", "available"} <= set(out[1].columns) and "hf-jobs" in set(out[1]["backend"])


def test_estimate_handler_for_dpo_pairs(monkeypatch, tmp_path):
    from ftassist import config

    monkeypatch.setattr(config, "detect_hardware", lambda refresh=False: {"cuda": False, "gpus": [], "source": "none"})
    out = estimate.estimate_handler(Context.open(), *_estimate_args({}, avg_tokens=600, methods=["lora"],
                                                                    objective="dpo"))
    summary, table, session = out[0], out[6], out[7]
    assert "1,000 preference pairs, 600,000 tokens" in summary
    assert table["inputs"]["objective"] == "dpo" and all(r["objective"] == "dpo" for r in table["rows"])
    assert session.option["objective"] == "dpo" and session.option["label"].startswith("DPO ")
    # a checked chat dataset is not pairs: the tab says so instead of pricing chats as DPO
    chat = tmp_path / "train.jsonl"
    chat.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    checked = Session().checked(Dataset(path=str(chat), report=_session_with_report().report))
    with pytest.raises(gr.Error, match=r"train.jsonl line 1: this record is in chat format, but the file holds"):
        estimate.estimate_handler(Context.open(), *_estimate_args(checked, objective="dpo"))
