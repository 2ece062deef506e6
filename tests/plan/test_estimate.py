"""The side-by-side table: the seed example, reuse of the report's counts, recommendation, "how" strings."""

from __future__ import annotations

import json

import pytest

from ftassist.data.report import DataReport, TokenStats
from ftassist.plan import estimate as est


def _report(per_example, assistant=None, encoding="o200k_base") -> DataReport:
    return DataReport(
        path="train.jsonl", n_records=len(per_example), n_examples=len(per_example), format="chat",
        tokens=TokenStats(encoding=encoding, exact=True, per_example=list(per_example),
                          assistant_per_example=list(assistant or [t // 4 for t in per_example]),
                          total=sum(per_example)),
    )


def test_seed_example_four_dollars_per_epoch():
    table = est.estimate_all(est.tokens_quick(1000, 500),
                             {"openai_models": ["gpt-3.5-turbo"], "training_price": 8.0, "epochs": 1,
                              "include_self_hosted": False})
    (row,) = table.rows
    assert row.billing_tokens == 500_000 and row.epochs == 1
    assert row.training_cost_usd == pytest.approx(4.0)
    assert "$4.00" in row.how["training_cost_usd"]
    # default price of gpt-3.5-turbo is the cookbook's $0.008 per 1K as well
    table = est.estimate_all(est.tokens_quick(1000, 500),
                             {"openai_models": ["gpt-3.5-turbo-0125"], "epochs": "auto", "include_self_hosted": False})
    assert table.rows[0].training_cost_usd == pytest.approx(12.0)  # 3 auto epochs


def test_estimate_from_report_reuses_counts_without_tokenising(monkeypatch):
    import ftassist.data.tokens as tok

    def boom(*a, **k):
        raise AssertionError("the estimate must not tokenise")

    monkeypatch.setattr(tok, "get_encoding", boom)
    monkeypatch.setattr(tok, "count_chat", boom, raising=False)
    per = [100, 200, 70_000, 300]
    table = est.estimate_from_report(_report(per), {"openai_models": ["gpt-4o-mini"], "base_models": ["Qwen/Qwen2.5-0.5B"],
                                                    "methods": ["lora"], "gpus": ["L4"]})
    openai = table.row("openai:gpt-4o-mini-2024-07-18")
    assert openai.billing_tokens == 100 + 200 + 65_536 + 300  # clipped at the per-example limit
    assert openai.epochs == 25  # 4 examples: min(25, 100 // 4)
    assert table.inputs["source"] == "report" and table.inputs["exact"]
    hosted = table.row("lora:Qwen/Qwen2.5-0.5B:L4")
    assert hosted.billing_tokens == 100 + 200 + 8192 + 300  # truncated at the default max seq_len 8,192
    assert any("truncated" in n for n in table.notes)
    # the dict form (as stored in the UI session) works too
    again = est.estimate_from_report(_report(per).to_dict(), {"openai_models": ["gpt-4o-mini"],
                                                              "include_self_hosted": False})
    assert again.rows[0].billing_tokens == openai.billing_tokens


def test_table_is_json_and_every_figure_says_how():
    table = est.estimate_all(est.tokens_quick(2000, 800))
    data = json.loads(table.to_json())
    assert data["recommended_id"] and sum(r["recommended"] for r in data["rows"]) == 1
    kinds = {r["kind"] for r in data["rows"]}
    assert kinds == {"openai", "self_hosted", "hf_jobs", "together"}
    for r in data["rows"]:
        assert r["backend"] in {"openai", "local", "elsewhere", "hf-jobs", "together"}
        assert r["start"].startswith("ftassist train")
        if r["kind"] == "together":
            assert {"trained_tokens", "cost_usd"} <= set(r["how"])
        elif r["kind"] == "openai":
            assert {"epochs", "billing_tokens", "trained_tokens", "training_cost_usd"} <= set(r["how"])
        else:
            assert {"memory_gb", "fits", "hours", "cost_usd", "trained_tokens"} <= set(r["how"])
            assert r["memory_gb"] > 0 and isinstance(r["fits"], bool)
            assert r["hours"] is None or r["hours"] > 0
    md = est.how_markdown(table)
    assert "auto epochs" in md and "★" in md
    assert len(est.display_rows(table)) == len(table.rows)
    assert len(est.display_rows(table, only_fitting=True)) < len(table.rows)


def test_recommendation_is_cheapest_fitting_and_respects_preference():
    table = est.estimate_all(est.tokens_quick(1000, 500), {"openai_customer": True, "today": "2026-11-30"})
    rec = table.recommended
    fitting = [r for r in table.rows if r.cost_usd is not None and r.fits is not False and r.available]
    assert rec.cost_usd == min(r.cost_usd for r in fitting)
    assert rec.fits is not False
    pref = est.estimate_all(est.tokens_quick(1000, 500), {"prefer": "openai", "openai_customer": True,
                                                          "today": "2026-11-30"})
    assert pref.recommended.kind == "openai"
    # the cheapest training price still running: gpt-4.1-nano ($1.50) shut down on 2026-10-23
    assert pref.recommended.model == "gpt-4o-mini-2024-07-18"
    assert "decision guide" in pref.recommendation
    q = est.estimate_all(est.tokens_quick(1000, 500), {"prefer": "qlora"})
    assert q.recommended.method == "qlora"


def test_rft_row_has_no_invented_price():
    table = est.estimate_all(est.tokens_quick(100, 500), {"openai_models": ["o4-mini"], "include_self_hosted": False})
    (row,) = table.rows
    assert row.training_cost_usd is None and row.method == "openai_rft"
    assert "per hour" in row.note and not row.recommended
    assert table.recommended_id is None


def test_overrides_flow_through():
    base = est.estimate_all(est.tokens_quick(1000, 500), {"openai_models": ["gpt-4o-mini"], "gpus": ["L4"],
                                                          "methods": ["qlora"]})
    over = est.estimate_all(est.tokens_quick(1000, 500), {
        "openai_models": ["gpt-4o-mini"], "gpus": ["L4"], "methods": ["qlora"], "training_price": 6.0,
        "price_overrides": {"gpt-4o-mini": {"output": 2.4}}, "gpu_prices": {"L4": 1.6}})
    b, o = base.rows[0], over.rows[0]
    assert o.training_cost_usd == pytest.approx(2 * b.training_cost_usd)
    assert o.inference_cost_month_usd > b.inference_cost_month_usd
    assert "overridden" in o.note
    assert over.rows[1].cost_usd == pytest.approx(2 * base.rows[1].cost_usd)


def test_inference_uses_input_minus_assistant():
    table = est.estimate_from_report(_report([1000, 1000], assistant=[200, 400]),
                                     {"openai_models": ["gpt-4o-mini"], "include_self_hosted": False,
                                      "requests_per_month": 1000})
    assert table.inputs["avg_input_tokens"] == 700 and table.inputs["avg_output_tokens"] == 300
    expected = 1000 * (700 * 0.30 + 300 * 1.20) / 1e6
    assert table.rows[0].inference_cost_month_usd == pytest.approx(expected)


def test_encoding_mismatch_is_said():
    table = est.estimate_from_report(_report([100] * 20), {"openai_models": ["gpt-3.5-turbo"], "include_self_hosted": False})
    assert "cl100k_base" in table.rows[0].how["tokens"]


def test_quick_mode_errors():
    for args in ((0, 500), (10, 0), (None, None)):
        with pytest.raises(ValueError, match="Quick mode"):
            est.tokens_quick(*args)
    with pytest.raises(ValueError):
        est.tokens_quick(10, 100, 200)
    with pytest.raises(ValueError, match="no token counts"):
        est.tokens_from_report({"path": "x", "tokens": None})
    with pytest.raises(ValueError, match="Unknown estimate option"):
        est.estimate_all(est.tokens_quick(1, 1), {"bogus": 1})
    with pytest.raises(ValueError, match="Unknown GPU"):
        est.estimate_all(est.tokens_quick(1, 1), {"gpus": ["Voodoo2"]})


def test_pasted_example_is_counted():
    chat = {"messages": [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi!"}]}
    tin = est.tokens_from_example(json.dumps(chat), 50, "gpt-4o-mini")
    from ftassist.data.tokens import count_chat, get_encoding

    total, assistant = count_chat(chat, get_encoding("o200k_base"))
    assert tin.per_example == [total] * 50 and tin.assistant_per_example == [assistant] * 50
    assert tin.source == "pasted example"
    with pytest.raises(ValueError, match="not JSON"):
        est.tokens_from_example("hello", 5)
    with pytest.raises(ValueError, match="messages"):
        est.tokens_from_example("{}", 5)


def test_estimate_after_check_is_fast():
    # 100,000 examples: the estimate itself (no tokenising) must stay well under a second.
    report = _report([300 + (i % 700) for i in range(100_000)])
    table = est.estimate_from_report(report)
    assert table.seconds < 1.0
    assert table.inputs["n_examples"] == 100_000 and table.inputs["epochs"] == 1
