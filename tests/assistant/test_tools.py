"""The assistant's tools are the registry's use cases: schemas from their signatures, parsed arguments."""

from __future__ import annotations

import inspect
import json
import typing

import pytest

from ftassist.assistant import tools
from ftassist.plan import knowledge
from ftassist.redact import scrub
from ftassist.usecases import registry
from ftassist.usecases.context import UseCaseError
from ftassist.usecases.session import Session


def test_the_tools_are_the_assistant_use_cases_of_the_registry():
    every = registry.load_all()
    expected = {name for name, case in every.items() if case.assistant} - set(tools.REPLACED_BY)
    assert set(tools.offered()) == expected
    assert {"check_dataset", "start_run_from_session", "estimate_options", "advise_approach", "estimate_cost",
            "explain_loss", "run_progress", "explain_topic", "dataset_summary"} <= expected
    assert [s["function"]["name"] for s in tools.schemas()] == list(tools.offered())


def test_each_schema_matches_its_use_case_parameters():
    """Referee: the function's own signature and its docstring's Args lines, read here independently."""
    for name, case in tools.offered().items():
        s = tools.schema(case)
        json.dumps(s)  # plain JSON
        f = s["function"]
        assert f["name"] == name and f["description"].startswith(case.summary)
        params = inspect.signature(case.function).parameters
        hints = typing.get_type_hints(case.function)
        expected = [p for p in params if p not in ("ctx", "session", "api_key")
                    and "Callable" not in repr(hints[p])]  # progress callbacks are for front ends
        assert list(f["parameters"]["properties"]) == expected, name
        required = [p for p in expected if params[p].default is inspect.Parameter.empty]
        assert f["parameters"].get("required", []) == required, name
        assert f["parameters"]["additionalProperties"] is False
        doc = inspect.getdoc(case.function)
        for p, prop in f["parameters"]["properties"].items():
            assert prop["description"] and prop["description"].split()[0] in doc, (name, p)


def test_schema_types_and_enums():
    p = tools.schema(tools.find("estimate_cost"))["function"]["parameters"]
    assert p["properties"]["n_examples"] == {"type": "integer", "nullable": True,
                                             "description": "number of training examples"}
    assert p["properties"]["include_self_hosted"]["type"] == "boolean"
    assert p["properties"]["method"]["enum"] == ["lora", "qlora", "full"]
    assert "session" not in p["properties"] and "required" not in p
    t = tools.schema(tools.find("explain_topic"))["function"]["parameters"]
    assert t["properties"]["topic"]["enum"] == knowledge.topic_ids() and t["required"] == ["topic"]
    run = tools.schema(tools.find("start_run_from_session"))["function"]["parameters"]["properties"]
    assert "api_key" not in run and "session" not in run  # filled in by the assistant, never by the LLM
    check = tools.schema(tools.find("check_dataset"))["function"]["parameters"]
    assert "progress" not in check["properties"] and check["required"] == ["path"]


def test_arguments_are_parsed_and_refused_clearly():
    cost = tools.find("estimate_cost")
    assert tools.parse_arguments(cost, '{"n_examples": "5,000", "model": "gpt-4.1-mini", "epochs": 2.0}') == \
        {"n_examples": 5000, "model": "gpt-4.1-mini", "epochs": 2}
    assert tools.parse_arguments(cost, {"include_self_hosted": "yes", "gpu": ""}) == {"include_self_hosted": True}
    with pytest.raises(UseCaseError, match="unknown argument"):
        tools.parse_arguments(cost, {"bogus": 1})
    with pytest.raises(UseCaseError, match="unknown argument"):
        tools.parse_arguments(cost, {"session": {}})  # the LLM cannot hand in a session
    with pytest.raises(UseCaseError, match="must be one of"):
        tools.parse_arguments(tools.find("explain_topic"), {"topic": "astrology"})
    with pytest.raises(UseCaseError, match="not JSON"):
        tools.parse_arguments(cost, "{not json")
    with pytest.raises(UseCaseError, match="no tool"):
        tools.find("nope")


def test_run_fills_in_the_session(ctx, checked_session):
    case = tools.find("dataset_summary")
    result = tools.as_result(tools.run(ctx, case, {}, checked_session))
    assert result["checked"] and result["n_examples"] == 24
    assert not tools.as_result(tools.run(ctx, case, {}, Session()))["checked"]


def test_cost_and_price(ctx):
    r = tools.as_result(tools.run(ctx, tools.find("estimate_cost"), {"n_examples": 5000, "model": "gpt-4.1-mini"},
                                  Session()))
    assert r["rows"][0]["cost_usd"] == 37.5
    with pytest.raises(UseCaseError, match="How many examples"):
        tools.run(ctx, tools.find("estimate_cost"), {"model": "gpt-4.1-mini"}, Session())
    with pytest.raises(UseCaseError, match="don't know the model"):
        tools.run(ctx, tools.find("estimate_cost"), {"n_examples": 10, "model": "gpt-9"}, Session())
    price = tools.as_result(tools.run(ctx, tools.find("model_price"), {"model": "gpt-4o-mini"}, Session()))
    assert price["training"] == 3.0 and "65,536 tokens per example" in price["text"]
    assert "per hour" in tools.as_result(tools.run(ctx, tools.find("model_price"), {"model": "o4-mini"},
                                                   Session()))["text"]


def test_keys_are_scrubbed_by_the_one_helper():
    assert scrub("key sk-abcdefghijklmnop failed") == "key *** failed"
    assert scrub("bad key my-secret-123", "my-secret-123") == "bad key ***"


def test_result_for_llm_is_bounded():
    text = tools.result_for_llm({"text": "x" * 20000})
    assert len(text) <= tools.MAX_RESULT_CHARS
