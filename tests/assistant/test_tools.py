"""The tool registry: schemas generated from the signatures, safe calls, key scrubbing."""

from __future__ import annotations

import json

from ftassist.assistant import knowledge, tools


def test_every_tool_has_a_valid_schema():
    names = [s["function"]["name"] for s in tools.schemas()]
    assert names == list(tools.TOOLS)
    assert {"recommend_approach", "estimate_cost", "diagnose_loss", "dataset_summary", "propose_action"} <= set(names)
    for s in tools.schemas():
        f = s["function"]
        json.dumps(s)  # plain JSON
        assert f["description"] and f["parameters"]["type"] == "object"
        assert "session" not in f["parameters"]["properties"]
        for name, prop in f["parameters"]["properties"].items():
            assert prop.get("description"), (f["name"], name)
            assert prop["type"] in ("string", "integer", "number", "boolean")


def test_schema_types_and_enums():
    p = tools.schema("estimate_cost")["function"]["parameters"]
    assert p["properties"]["n_examples"]["type"] == "integer"
    assert p["properties"]["include_self_hosted"]["type"] == "boolean"
    assert p["properties"]["method"]["enum"] == ["lora", "qlora", "full"]
    assert p["required"] == []
    t = tools.schema("explain_topic")["function"]["parameters"]
    assert t["properties"]["topic"]["enum"] == knowledge.topic_ids() and t["required"] == ["topic"]
    assert tools.schema("propose_action")["function"]["parameters"]["required"] == ["action"]


def test_call_tool_coerces_and_reports_errors():
    r = tools.call_tool("estimate_cost", '{"n_examples": "5,000", "model": "gpt-4.1-mini"}', {})
    assert r["rows"][0]["cost_usd"] == 37.5
    assert "error" in tools.call_tool("nope", {}, {})
    assert "unknown argument" in tools.call_tool("estimate_cost", {"bogus": 1}, {})["error"]
    assert "must be one of" in tools.call_tool("explain_topic", {"topic": "astrology"}, {})["error"]
    assert "error" in tools.call_tool("estimate_cost", "{not json", {})
    assert "How many examples" in tools.call_tool("estimate_cost", {"model": "gpt-4.1-mini"}, {})["error"]
    assert "don't know the model" in tools.call_tool("estimate_cost", {"n_examples": 10, "model": "gpt-9"}, {})["error"]


def test_model_price():
    r = tools.call_tool("model_price", {"model": "gpt-4o-mini"}, {})
    assert r["training"] == 3.0 and "65,536 tokens per example" in r["text"]
    assert "per hour" in tools.call_tool("model_price", {"model": "o4-mini"}, {})["text"]


def test_scrub():
    assert tools.scrub("key sk-abcdefghijklmnop failed", None) == "key sk-*** failed"
    assert tools.scrub("bad key my-secret-123", "my-secret-123") == "bad key ***"


def test_result_for_llm_is_bounded():
    text = tools.result_for_llm({"text": "x" * 20000})
    assert len(text) <= tools.MAX_RESULT_CHARS
