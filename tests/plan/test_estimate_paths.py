"""Every path side by side from the same counts: Hugging Face Jobs flavors (hand-computed hours and dollars from the
provider file read here as JSON), Together (no invented rate), OpenAI (closed to a newcomer), the recommendation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftassist.cli import main
from ftassist.plan import estimate as est
from ftassist.plan import hardware, providers

PLAN = Path(est.__file__).parent
BASE = "Qwen/Qwen2.5-0.5B"
OPTIONS = {"base_models": [BASE], "methods": ["lora"], "local_gpus": [], "today": "2026-11-30",
           "allow_network": False, "epochs": 1}


def _files():
    jobs = json.loads((PLAN / "providers.json").read_text())["providers"]["hf-jobs"]
    peaks = {name: g["peak_tflops"] for name, g in json.loads((PLAN / "gpus.json").read_text())["gpus"].items()}
    return jobs, peaks


def test_each_jobs_flavor_is_flops_over_peak_times_mfu_plus_startup_at_its_price():
    jobs, peaks = _files()
    table = est.estimate_all(est.tokens_quick(1000, 500), OPTIONS)
    p = hardware.resolve_model(BASE, allow_network=False).compute_params()
    flops = (4 + 2) * p * 500_000  # LoRA 4P per token + 2P recompute (gradient checkpointing), 1 epoch
    rows = [r for r in table.rows if r.kind == "hf_jobs"]
    assert {r.flavor for r in rows} == {n for n, f in jobs["flavors"].items() if f["gpus"] == 1}
    checked = 0
    for r in rows:
        f = jobs["flavors"][r.flavor]
        assert r.backend == "hf-jobs" and r.available
        assert f"--backend hf-jobs --flavor {r.flavor} --base-model {BASE}" in r.start
        if f["gpu"] not in peaks:  # no peak throughput: no invented time
            assert r.hours is None and r.cost_usd is None and "peak" in r.why
            continue
        hours = flops / (peaks[f["gpu"]] * 1e12 * 0.35) / 3600 + jobs["startup_minutes"] / 60
        assert r.hours == pytest.approx(hours, rel=1e-9)
        assert r.cost_usd == pytest.approx(hours * f["usd_per_hour"], rel=1e-9)
        checked += 1
    assert checked >= 5
    t4 = table.row(f"hf-jobs:lora:{BASE}:t4-small")
    assert t4.hours == pytest.approx(0.1 + flops / (65e12 * 0.35) / 3600)


def test_flavors_that_do_not_fit_are_marked():
    table = est.estimate_all(est.tokens_quick(100, 500), {**OPTIONS, "base_models": ["meta-llama/Llama-3.1-8B"],
                                                          "methods": ["full"]})
    rows = {r.flavor: r for r in table.rows if r.kind == "hf_jobs"}
    assert rows["t4-small"].fits is False and "needs" in rows["t4-small"].note
    assert rows["l4x1"].fits is False
    assert rows["h200"].fits is True  # ~8B x 16 bytes = ~120 GB < 141 x 0.95
    assert not any(r.recommended for r in table.rows if r.fits is False)


def test_together_has_no_cost_without_a_rate_and_a_hand_computed_one_with_it(monkeypatch):
    table = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "methods": ["lora", "qlora"]})
    (row,) = [r for r in table.rows if r.kind == "together"]  # Together has no QLoRA
    assert row.backend == "together" and row.cost_usd is None and "together.ai/pricing" in row.why
    assert not est.choosable(row) and not row.recommended
    assert row.trained_tokens == 500_000
    monkeypatch.setitem(providers.provider("together"), "rates_usd_per_1m_tokens",
                        {"up to 16B": {"sft": {"lora": 0.48, "full": 0.54}}})
    table = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "epochs": 3})
    (row,) = [r for r in table.rows if r.kind == "together"]
    assert row.cost_usd == pytest.approx(3 * 500_000 * 0.48 / 1e6)


def test_openai_rows_are_unavailable_to_a_newcomer_and_never_recommended():
    table = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "openai_customer": False, "prefer": "openai"})
    openai = [r for r in table.rows if r.kind == "openai"]
    assert openai and all(r.backend == "openai" and not r.available and r.why for r in openai)
    assert table.recommended.kind != "openai"


def test_recommendation_is_the_cheapest_available_fitting_row_and_jobs_without_a_local_gpu():
    table = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "methods": None})
    usable = [r for r in table.rows if r.available and r.fits is not False and r.cost_usd is not None]
    assert table.recommended.cost_usd == min(r.cost_usd for r in usable)
    assert table.recommended.kind == "hf_jobs"  # the catalogue GPUs are a comparison once the machine was looked at
    assert all(not r.available for r in table.rows if r.kind == "self_hosted")
    assert table.recommended.start in table.recommendation
    prefer = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "methods": None, "prefer": "qlora"})
    assert prefer.recommended.method == "qlora" and prefer.recommended.kind == "hf_jobs"
    # a GPU here: free, so it wins when it fits
    here = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "local_gpus": [{"name": "NVIDIA L4",
                                                                                    "memory_gb": 24}]})
    assert here.recommended.id == f"local:lora:{BASE}:NVIDIA L4" and here.recommended.cost_usd == 0
    # a GPU the person names is one they can use: its catalogue row may be chosen
    named = est.estimate_all(est.tokens_quick(1000, 500), {**OPTIONS, "gpus": ["RTX 4090"]})
    assert named.row(f"lora:{BASE}:RTX 4090").available and named.recommended.id == f"lora:{BASE}:RTX 4090"
    assert here.recommended.hours == pytest.approx(
        6 * hardware.resolve_model(BASE, allow_network=False).compute_params() * 500_000 / (121e12 * 0.35) / 3600)


def test_cli_json_options_have_the_six_keys(capsys, monkeypatch):
    from ftassist import config

    monkeypatch.setattr(config, "detect_hardware", lambda refresh=False: {"cuda": False, "gpus": [], "source": "none"})
    assert main(["estimate", "--examples", "1000", "--avg-tokens", "500", "--base-model", BASE, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["options"]
    for option in d["options"]:
        assert {"backend", "hardware", "fits", "hours", "cost_usd", "available", "why"} <= set(option)
    # no GPU here: the catalogue GPUs are rented elsewhere (a comparison), and no row claims this machine
    assert {o["backend"] for o in d["options"]} == {"elsewhere", "hf-jobs", "together"}
    elsewhere = [o for o in d["options"] if o["backend"] == "elsewhere"]
    assert all(o["kind"] == "self_hosted" and not o["available"] and "rented from another cloud" in o["hardware"]
               and o["label"].endswith("(rented elsewhere)") for o in elsewhere)
    assert d["recommended_id"].startswith("hf-jobs:")
    assert len(est.display_rows(d | {"rows": d["options"]})[0]) == len(est.DISPLAY_HEADERS)
