"""Where a fine-tune can run, by date: OpenAI's wind-down, model shutdowns, and that no path the person
cannot use is ever recommended (the guide, the estimate, the defaults, `ftassist providers`).

The expected dates below are written out from OpenAI's deprecations page (read 2026-11-30), not read
from providers.json, so a wrong date in the file fails here.
"""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta

import pytest

from ftassist.cli import main
from ftassist.plan import estimate as est
from ftassist.plan import guide, providers
from ftassist.usecases import registry
from ftassist.usecases.context import Context, UseCaseError

NEW_CLOSED = date(2026, 5, 7)  # organisations that never fine-tuned
INACTIVE_CLOSED = date(2026, 7, 2)  # organisations with no fine-tuned inference in 60 days
LAST_DAY = date(2027, 1, 6)  # after it, nobody
SHUTDOWN = date(2027, 1, 14)  # gpt-4o, gpt-4o-mini, gpt-4.1, gpt-4.1-mini and their fine-tunes
DAY = timedelta(days=1)
TODAY = date(2026, 11, 30)


# -- availability by date -------------------------------------------------------------------------
def _expected_openai(day: date, customer: bool | None) -> bool:
    if day > LAST_DAY:
        return False
    if customer:
        return True
    return day < NEW_CLOSED


DAYS = sorted({d + k * DAY for d in (NEW_CLOSED, INACTIVE_CLOSED, LAST_DAY) for k in (-1, 0, 1)})


@pytest.mark.parametrize("customer", [True, False, None])
@pytest.mark.parametrize("day", DAYS, ids=str)
def test_openai_availability_around_each_date(day, customer):
    available, why, deadline = providers.availability("openai", day, customer)
    assert available is _expected_openai(day, customer)
    assert why and "\n" not in why
    if available:
        assert deadline == (LAST_DAY if customer else NEW_CLOSED)
        assert str(deadline) in why
    else:
        assert deadline is None
        closing = LAST_DAY if day > LAST_DAY else INACTIVE_CLOSED if day >= INACTIVE_CLOSED else NEW_CLOSED
        assert f"{closing}" in why
        assert "Hugging Face Jobs" in why and "Together" in why  # where to go instead


@pytest.mark.parametrize("provider_id", ["local", "hf-jobs", "together"])
def test_the_other_providers_stay_open(provider_id):
    for day in (*DAYS, TODAY):
        for customer in (True, False, None):
            assert providers.availability(provider_id, day, customer).available


def test_unknown_provider_and_bad_date():
    with pytest.raises(ValueError, match="hf-jobs"):
        providers.availability("anthropic", TODAY)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        providers.availability("openai", "30/11/2026")


def test_facts_carry_source_and_reading_date():
    for provider_id in ("hf-jobs", "together", "openai"):
        sources = providers.provider(provider_id)["sources"]
        assert sources and all(s["url"].startswith("https://") and date.fromisoformat(s["read_on"]) for s in sources)
    flavors = providers.provider("hf-jobs")["flavors"]
    assert flavors["t4-small"]["usd_per_hour"] == 0.40 and flavors["a100-large"]["usd_per_hour"] == 2.50
    from huggingface_hub import JobHardware  # the flavor names the SDK accepts

    assert set(flavors) <= {h.value for h in JobHardware}
    together = providers.provider("together")
    assert together["rates_usd_per_1m_tokens"] is None and "together.ai/pricing" in together["rates_note"]


# -- shutdowns and the 90-day warning -------------------------------------------------------------
def test_shutdown_dates_and_warning_window():
    for model in ("gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14",
                  "gpt-4.1-mini-2025-04-14"):
        assert providers.shutdown_of(model, TODAY).shutdown_date == SHUTDOWN
    assert providers.model_warning("gpt-4.1-mini-2025-04-14", TODAY) == \
        "gpt-4.1-mini-2025-04-14 shuts down on 2027-01-14 (45 days)"
    assert (SHUTDOWN - TODAY).days == 45
    edge = SHUTDOWN - timedelta(days=90)
    assert providers.model_warning("gpt-4.1-mini", edge).endswith("(90 days)")  # an alias resolves
    assert providers.model_warning("gpt-4.1-mini", edge - DAY) == ""  # 91 days away: no warning yet
    assert "shut down on 2027-01-14" in providers.model_warning("ft:gpt-4o-mini-2024-07-18:org::abc", SHUTDOWN)
    assert providers.model_warning("Qwen/Qwen2.5-0.5B", TODAY) == ""  # not OpenAI's: nothing announced
    soon = {s.model for s in providers.shutting_down(90, TODAY)}
    assert {"gpt-4.1-mini-2025-04-14", "gpt-4o-mini-2024-07-18"} <= soon
    assert all(not s.shut_down for s in providers.shutting_down(90, TODAY))


def test_preferred_model_avoids_soon_shutdowns_when_it_can():
    assert providers.preferred_model(["some-future-model"], "gpt-4.1-mini-2025-04-14", TODAY) == "some-future-model"
    # nothing lasts longer: keep the default (it gets the warning instead)
    assert providers.preferred_model(["gpt-4.1-2025-04-14"], "gpt-4.1-mini-2025-04-14", TODAY) == \
        "gpt-4.1-mini-2025-04-14"
    # a model already shut down is never kept when another still runs
    assert providers.preferred_model(["gpt-4.1-2025-04-14"], "gpt-4.1-nano-2025-04-14", TODAY) == "gpt-4.1-2025-04-14"


def test_defaults_shown_with_their_warning(monkeypatch):
    """Every default the app shows that shuts down within 90 days carries its warning."""
    from ftassist.ui import data_tab
    from ftassist.usecases import training
    from ftassist.usecases.session import Session

    monkeypatch.setattr(providers, "today", lambda: TODAY)
    model = data_tab.default_model()
    warning = providers.model_warning(model)
    assert warning and warning in data_tab.model_info(model)
    labels = dict((value, label) for label, value in data_tab.model_options())
    assert "2027-01-14 (45 days)" in labels["gpt-4.1-mini-2025-04-14"]
    defaults = training.training_defaults(Context.open(), Session())
    assert defaults.openai_model_warning == providers.model_warning(defaults.openai_model)
    assert "shuts down on 2027-01-14" in defaults.openai_model_warning


# -- the guide never recommends a closed path ------------------------------------------------------
BOOLS = ("needs_current_info", "style_or_format", "domain_terminology", "data_can_leave", "high_volume",
         "tried_prompting")


def _every_answer(customer: bool):
    for flags, n, budget, hardware in itertools.product(itertools.product((False, True), repeat=len(BOOLS)),
                                                       (None, 5, 50, 500, 20_000), guide.BUDGETS, guide.HARDWARE):
        yield guide.Answers(**dict(zip(BOOLS, flags)), n_examples=n, budget=budget, hardware=hardware,
                            openai_customer=customer)


@pytest.mark.parametrize(("customer", "day"), [(False, TODAY), (False, NEW_CLOSED), (True, LAST_DAY + DAY),
                                               (False, LAST_DAY + DAY)], ids=str)
def test_guide_never_recommends_openai_to_whom_it_is_closed(customer, day):
    seen = set()
    for answers in _every_answer(customer):
        rec = guide.recommend(answers, today=day)
        assert rec.method != "openai" and rec.where != "openai" and rec.deadline is None, answers
        seen.add(rec.where)
    assert {"hf-jobs", "together", "local"} <= seen  # the open paths are offered instead


def test_guide_offers_openai_to_a_customer_with_its_deadline():
    offered = 0
    for answers in _every_answer(True):
        rec = guide.recommend(answers, today=TODAY)
        if rec.method == "openai":
            offered += 1
            assert answers.data_can_leave and answers.hardware == "none"
            assert rec.where == "openai" and rec.deadline == "2027-01-06"
            assert "until 2027-01-06" in rec.headline() and "2027-01-14" in rec.to_markdown()
    assert offered


def test_no_gpu_and_data_may_leave_leads_to_rented_or_hosted():
    rec = guide.recommend(dict(style_or_format=True, tried_prompting=True, n_examples=1000), today=TODAY)
    assert (rec.method, rec.where) == ("lora", "hf-jobs")
    assert "Hugging Face Jobs" in rec.headline()
    text = rec.to_markdown()
    assert "Together AI" in text and "OpenAI fine-tuning is not suggested" in text and "2026-07-02" in text


# -- the estimate keeps OpenAI rows but marks them -------------------------------------------------
def test_estimate_marks_openai_rows_and_never_picks_one_that_is_closed():
    tokens = est.tokens_quick(1000, 500)
    for options in ({"today": str(TODAY)}, {"today": str(TODAY), "openai_customer": False, "prefer": "openai"},
                    {"today": str(LAST_DAY + DAY), "openai_customer": True, "prefer": "openai"}):
        table = est.estimate_all(tokens, {**options, "gpus": ["L4"], "methods": ["lora"]})
        openai_rows = [r for r in table.rows if r.kind == "openai"]
        assert openai_rows and all(not r.available and r.why for r in openai_rows)
        assert all(r.label.endswith("(unavailable)") for r in openai_rows)
        assert table.recommended.kind == "self_hosted" and table.recommended.available
    table = est.estimate_all(tokens, {"today": str(TODAY), "openai_customer": True, "include_self_hosted": False})
    rows = {r.model: r for r in table.rows}
    assert rows["gpt-4.1-nano-2025-04-14"].available is False and "shut down" in rows["gpt-4.1-nano-2025-04-14"].why
    assert rows["gpt-4.1-mini-2025-04-14"].available and "2027-01-14 (45 days)" in rows["gpt-4.1-mini-2025-04-14"].note
    assert table.recommended.available


# -- `ftassist providers` and its use case ----------------------------------------------------------
def _providers_json(capsys, *argv) -> dict:
    assert main(["providers", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_providers_json_for_a_customer_and_after_the_last_day(capsys):
    d = _providers_json(capsys, "--openai-customer", "--date", "2026-11-30")
    assert d["today"] == "2026-11-30" and d["openai_customer"] is True
    by_id = {p["id"]: p for p in d["providers"]}
    assert list(by_id) == ["local", "hf-jobs", "together", "openai"]
    assert by_id["openai"]["available"] and by_id["openai"]["deadline"] == "2027-01-06"
    assert by_id["openai"]["dates"] == {"closed_to_new_organisations_since": "2026-05-07",
                                        "closed_to_inactive_organisations_since": "2026-07-02",
                                        "no_new_jobs_after": "2027-01-06"}
    assert by_id["hf-jobs"]["prices"]["flavors"]["l4x1"] == 0.80
    assert by_id["together"]["trains"] == {"objectives": ["sft", "dpo"], "methods": ["lora", "full"]}
    for p in d["providers"][1:]:
        assert p["sources"] and all(s["url"] and s["read_on"] for s in p["sources"])
    assert {m["model"]: m["days_left"] for m in d["shutting_down"]}["gpt-4.1-mini-2025-04-14"] == 45
    later = _providers_json(capsys, "--openai-customer", "--date", "2027-01-07")
    openai = next(p for p in later["providers"] if p["id"] == "openai")
    assert not openai["available"] and "2027-01-06" in openai["why"]


def test_providers_default_is_not_a_customer(capsys):
    d = _providers_json(capsys)
    openai = next(p for p in d["providers"] if p["id"] == "openai")
    assert d["openai_customer"] is None and openai["available"] is False
    assert main(["providers", "--date", "2026-11-30"]) == 0
    text = capsys.readouterr().out
    assert "OpenAI fine-tuning [openai]: CLOSED" in text and "Hugging Face Jobs (rented GPU) [hf-jobs]: open" in text
    assert main(["providers", "--date", "yesterday"]) != 0
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_provider_status_use_case(tmp_path):
    ctx = Context.open()
    report = registry.call(ctx, "provider_status", {"openai_customer": False, "today": "2026-05-06"})
    openai = next(p for p in report.providers if p.id == "openai")
    assert openai.available and openai.deadline == "2026-05-07"  # open to all the day before the first step
    with pytest.raises(UseCaseError, match="YYYY-MM-DD"):
        registry.call(ctx, "provider_status", {"today": "soon"})


def test_header_names_the_open_paths(monkeypatch):
    from ftassist import config

    cpu = {"gpus": [], "cpu_count": 2}
    monkeypatch.setattr(providers, "today", lambda: TODAY)
    line = config.hardware_line(cpu)
    assert "Hugging Face Jobs" in line and "Together" in line and "only for its active customers, until 2027-01-06" in line
    monkeypatch.setattr(providers, "today", lambda: LAST_DAY + DAY)
    assert "OpenAI" not in config.hardware_line(cpu)
