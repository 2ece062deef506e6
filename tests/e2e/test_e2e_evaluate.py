"""The Evaluate tab and the Playground in a real browser, on one app: a tiny-random model fine-tuned for two
steps measured against its base on the test split Fix & split held out (the measures, their intervals and the
verdict sentence), and an API model's answer streamed into the Playground a word at a time, then kept as a
training example."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from e2e_helpers import ROOT, App, _app_env, goto_tab, grid_records, no_traceback, open_app
from playwright.sync_api import expect

from standins import OpenAIStandIn

BASE, TUNED, HELPER = "tiny base", "tiny tuned", "helper api"
ANSWER = "Paris is the capital of France, and it has been for a very long time."
PAUSE_S = 0.25  # between two pieces of the streamed answer: long enough to see it grow

# Before the app starts (it owns the database): a two-step LoRA run on tiny-random, its base and adapter
# registered, a Fix & split with a test split under the data dir, and the stand-in's model registered.
SEED = r"""
import json, subprocess, sys
from pathlib import Path
from ftassist.arena import models
from ftassist.data.clean import clean_file
from ftassist.store import get_store
from ftassist.train.spec import JobSpec
from ftassist.usecases.context import Settings

home, run, api_url = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
facts = [("What is the capital of France?", "Paris."), ("What colour is the sky?", "Blue."),
         ("How many legs has a spider?", "Eight."), ("What do bees make?", "Honey.")]
rows = [{"messages": [{"role": "user", "content": f"{q} (question {i})"}, {"role": "assistant", "content": a}]}
        for i in range(40) for q, a in [facts[i % 4]]]
source = home.parent / "facts.jsonl"
source.write_text("".join(json.dumps(r) + "\n" for r in rows))
split = clean_file(source, Settings(home).clean_dir / "seeded", valid_fraction=0.1, test_fraction=0.15)
assert split.n_test == 6, split
run.mkdir()
spec = JobSpec(base_model="tiny-random", train_file=str(split.train_path), valid_file=str(split.valid_path),
               output_dir=str(run / "model"), max_steps=2)
assert spec.validate() == [], spec.validate()
spec.save(run)
with open(run / "worker.log", "ab") as log:
    code = subprocess.run([sys.executable, "-m", "ftassist.train.worker", str(run)], stdout=log,
                          stderr=subprocess.STDOUT, timeout=300).returncode
assert code == 0, (run / "worker.log").read_text(errors="replace")[-3000:]
kind, config = models.run_model_config(run)
store = get_store()
models.add_model(store, "hf", sys.argv[4], {"model": str(run / "base_model")})
models.add_model(store, kind, sys.argv[5], config)
models.add_model(store, "openai_compatible", sys.argv[6], {"model": "helper", "base_url": api_url})
print("seeded")
"""


@pytest.fixture(scope="module")
def helper_api():
    """The OpenAI stand-in the app's Playground streams from, slowly."""
    with OpenAIStandIn(models=["helper"]) as server:
        server.answers["helper"] = ANSWER
        server.stream_pause_s = PAUSE_S
        yield server


@pytest.fixture(scope="module")
def eval_app(tmp_path_factory, chromium_path, helper_api):
    home = tmp_path_factory.mktemp("evaluate") / "home"
    home.mkdir()
    env = _app_env(home, {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    seeded = subprocess.run([sys.executable, "-c", SEED, str(home), str(home.parent / "run"), helper_api.base_url,
                             BASE, TUNED, HELPER], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert seeded.returncode == 0 and "seeded" in seeded.stdout, seeded.stdout + seeded.stderr[-4000:]
    server = App(home).wait_ready()
    yield server
    server.stop()


def _pick(page, dropdown_id: str, name: str) -> None:
    """Choose `name` in a Gradio dropdown (single or multiple)."""
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")


@pytest.mark.timeout(400)
def test_evaluate_shows_measures_intervals_and_the_verdict(module_page, eval_app, shots):
    page = open_app(module_page, eval_app.url)
    goto_tab(page, "Evaluate")
    # without an upload, the test split Fix & split held out (never trained on) is what the models answer
    expect(page.locator("#eval-data-note")).to_contain_text("test split")
    expect(page.locator("#eval-data-note")).to_contain_text("never seen in training")
    expect(page.locator("#eval-base input")).to_have_value(BASE)
    _pick(page, "eval-tuned", TUNED)
    longest = page.locator("#eval-max-new-tokens input[type=number]")
    longest.fill("8")
    longest.press("Enter")
    expect(page.locator("#eval-max-new-tokens input[type=range]")).to_have_value("8")
    page.locator("#eval-run").click()

    verdicts = page.locator("#eval-verdicts")
    expect(verdicts).to_contain_text(f"{TUNED}: better than the base on", timeout=300_000)
    text = verdicts.inner_text()
    assert re.search(rf"{TUNED}: better than the base on \d of 4 measures", text), text
    assert "6 of 6 examples" in text and "test split" in text and "never seen in training" in text, text
    assert "no human votes yet" in text
    assert "general answers" in text  # the forgetting check on the shipped general questions
    rows = {r["model"]: r for r in grid_records(page.locator("#eval-measures"))}
    assert set(rows) == {f"{BASE} (base)", TUNED}, rows
    for row in rows.values():  # every measure with its 95% interval (loss and perplexity: local models)
        for measure in ("ROUGE-L", "BLEU", "exact match", "loss", "perplexity"):
            assert re.fullmatch(r"[-\d.e+]+ \([-\d.e+]+ to [-\d.e+]+\)", row[measure]), (measure, row)
    assert rows[TUNED]["people prefer it (vs base)"] == "no votes yet"
    shots(page, "evaluated", full_page=True)
    no_traceback(page)


@pytest.mark.timeout(240)
def test_the_playground_streams_an_answer_and_keeps_it(module_page, eval_app, helper_api, shots):
    page = module_page
    goto_tab(page, "Playground")
    _pick(page, "play-model-a", HELPER)
    chat = page.locator("#play-chat-a")
    # record every text the answer shows while it arrives
    chat.evaluate("""el => { window.seenAnswers = [];
        new MutationObserver(() => { const bots = el.querySelectorAll('.bot, [data-testid="bot"]');
            const last = bots.length ? bots[bots.length - 1].innerText.trim() : '';
            if (last && window.seenAnswers[window.seenAnswers.length - 1] !== last) window.seenAnswers.push(last); })
          .observe(el, {childList: true, subtree: true, characterData: true}); }""")
    page.locator("#play-message textarea").fill("Where is Paris?")
    page.locator("#play-send").click()
    expect(chat).to_contain_text(ANSWER, timeout=60_000)
    seen = page.evaluate("window.seenAnswers")
    partial = [text for text in seen if ANSWER.startswith(text) and text != ANSWER]  # ("Loading content" aside)
    assert len(partial) >= 3 and seen[-1] == ANSWER, seen  # it grew, word by word
    assert all(later.startswith(earlier) for earlier, later in zip(partial, partial[1:])), seen
    assert [r.get("stream") for r in helper_api.requests] == [True]  # one request, streamed
    shots(page, "streamed")

    page.locator("#play-keep").get_by_text("Keep this answer").click()
    page.get_by_role("button", name="Save as a training example").click()
    expect(page.locator("#play-saved")).to_contain_text("Saved as training example 1")
    kept = eval_app.home / "playground" / "examples.jsonl"
    assert json.loads(kept.read_text(encoding="utf-8").splitlines()[0])["messages"] == [
        {"role": "user", "content": "Where is Paris?"}, {"role": "assistant", "content": ANSWER}]
    shots(page, "kept")
    no_traceback(page)
