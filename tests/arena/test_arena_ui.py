"""The voting page as a browser sees it: the real app on 127.0.0.1, read over HTTP."""

import json
import uuid

import httpx
import pytest

from ftassist import store as store_mod
from ftassist.arena import battles
from ftassist.usecases.context import Context

SCRIPT = "<script>window.__pwned = 1</script>Four."
EVIL_NAME = "Zorblax <img src=x onerror=alert(1)>"


@pytest.fixture
def app_url():
    # The real app's page, or the test fails: a page built here instead would pass while the app
    # cannot even import.
    from ftassist.ui.layout import build_app

    store = store_mod.get_store()
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES "
                  "('qux-7b-ft', 'hf', ?, '{}'), ('plugh-base', 'hf', 'Plugh Base Thirteen', '{}')", [EVIL_NAME])
    battles.add_battle(store, "What is 2+2?", "qux-7b-ft", "plugh-base", SCRIPT, "4")
    battles.rate_limiter.reset()
    demo = build_app(arena_only=True)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    yield url.rstrip("/")
    demo.close()


class Session:
    """Raw Gradio queue protocol, so the test sees every byte the browser would."""

    def __init__(self, root: str):
        self.root = root
        self.hash = uuid.uuid4().hex[:12]
        self.config = httpx.get(root + "/config").json()
        self.fn = {d.get("api_name"): i for i, d in enumerate(self.config["dependencies"])}

    def call(self, api_name: str, data: list) -> tuple[str, dict]:
        join = httpx.post(self.root + "/gradio_api/queue/join", json={
            "data": data, "fn_index": self.fn[api_name], "session_hash": self.hash,
            "event_data": None, "trigger_id": None})
        join.raise_for_status()
        raw = ""
        with httpx.stream("GET", self.root + "/gradio_api/queue/data", params={"session_hash": self.hash},
                          timeout=30) as resp:
            for line in resp.iter_lines():
                raw += line + "\n"
                if '"process_completed"' in line:
                    return raw, json.loads(line.removeprefix("data: "))
        raise AssertionError(f"no result: {raw}")

    def component(self, elem_id: str) -> dict:
        return next(c for c in self.config["components"] if c.get("props", {}).get("elem_id") == elem_id)


SECRETS = ("qux", "Zorblax", "plugh", "Plugh Base")


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.lower() in text.lower()]


def test_identities_hidden_until_the_vote(app_url):
    page = httpx.get(app_url + "/").text
    config = httpx.get(app_url + "/config").text
    info = httpx.get(app_url + "/gradio_api/info").text
    assert _leaks(page) == [] and _leaks(config) == [] and _leaks(info) == []
    for name in ("arena_new_round", "arena_vote_a", "arena_vote_b", "arena_vote_tie", "arena_vote_bothbad",
                 "arena_skip"):
        assert name in json.loads(info)["named_endpoints"] or "/" + name in json.loads(info)["named_endpoints"]

    s = Session(app_url)
    raw, result = s.call("arena_new_round", [None])
    assert result["success"], raw
    assert _leaks(raw) == [], raw  # prompt and answers only, no ids, no names, no battle id
    battle_id = store_mod.get_store().query_rows("SELECT id FROM battles")[0][0]
    assert battle_id not in raw
    assert "What is 2+2?" in raw

    raw, result = s.call("arena_vote_a", [None])
    assert result["success"], raw
    assert "qux" not in raw  # ids stay server-side even after the vote; display names are revealed
    assert "Plugh Base Thirteen" in raw and "Zorblax" in raw
    assert len(store_mod.get_store().query_rows("SELECT * FROM votes")) == 1


def test_model_text_reaches_the_page_as_text(app_url):
    s = Session(app_url)
    # the answers go to read-only text boxes (a textarea shows text; nothing is parsed as HTML)
    for elem_id in ("arena-answer-a", "arena-answer-b", "arena-prompt"):
        component = s.component(elem_id)
        assert component["type"] == "textbox" and component["props"]["interactive"] is False
    raw, result = s.call("arena_new_round", [None])
    outputs = s.config["dependencies"][s.fn["arena_new_round"]]["outputs"]
    by_id = {c["id"]: c for c in s.config["components"]}
    delivered = {by_id[o]["props"].get("elem_id"): v for o, v in zip(outputs, result["output"]["data"])}
    values = {delivered["arena-answer-a"]["value"], delivered["arena-answer-b"]["value"]}
    assert values == {SCRIPT, "4"}  # the text unchanged, as a textbox value
    for v in result["output"]["data"]:  # and never into a component that renders HTML or Markdown
        assert not (isinstance(v, str) and "<script" in v)
    # the reveal is Markdown: the names in it arrive HTML-escaped
    raw, result = s.call("arena_vote_a", [None])
    outputs = s.config["dependencies"][s.fn["arena_vote_a"]]["outputs"]
    status = dict(zip([by_id[o]["props"].get("elem_id") for o in outputs], result["output"]["data"]))["arena-status"]
    assert "Zorblax &lt;img src=x onerror=alert\\(1\\)&gt;" in status
    assert "<img" not in status


def test_gradio_client_votes_through_named_endpoints(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    prompt, a, b, status = client.predict(api_name="/arena_new_round")[:4]
    assert prompt == "What is 2+2?"
    left, right, status = client.predict(api_name="/arena_vote_tie")[:3]
    assert "Model A" in str(left) and ("Zorblax" in status or "Plugh" in status)
    rows = store_mod.get_store().query_rows("SELECT winner, choice FROM votes")
    assert rows == [("tie", "tie")]
    # the same session has nothing left to vote on
    prompt, *_ = client.predict(api_name="/arena_new_round")
    assert prompt == ""


def test_arena_only_page_has_no_training_or_keys(app_url):
    config = httpx.get(app_url + "/config").text.lower()
    for word in ("api key", "api_key", "learning rate", "base url", "manage the arena", "leaderboard"):
        assert word not in config


def test_leaderboard_tab_figures_and_exports():
    from ftassist.ui import leaderboard

    store = store_mod.get_store()
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES "
                  "('base', 'hf', 'Base', '{}'), ('tuned', 'hf_adapter', 'Tuned', '{\"run_dir\": \"/r\"}')")
    rows = [("tuned", "base", "model_a")] * 30 + [("tuned", "base", "model_b")] * 8 + [("base", "tuned", "tie")] * 4
    store.executemany(
        "INSERT INTO votes (id, battle_id, voter, model_a, model_b, winner, source) VALUES (?, ?, ?, ?, ?, ?, 'import')",
        [[f"v{i}", f"import-{i}", "u", a, b, w] for i, (a, b, w) in enumerate(rows)],
    )
    headline, table, chart, pairwise = leaderboard.refresh(Context.open(), 200)
    assert "Tuned wins 76.2% against Base" in headline and "42 votes" in headline
    assert "fine-tuned model is better" in headline
    assert list(table["model"]) == ["Tuned", "Base"] and list(table["votes"]) == [42, 42]
    assert set(chart["figure"]) == {"Bradley-Terry rating", "95% CI low", "95% CI high"} and len(chart) == 6
    assert pairwise.set_index("row beats column").loc["Tuned", "Base"] == "76% (n=42)"
    csv_path = leaderboard.export_csv(Context.open())
    assert csv_path.endswith(".csv") and "Tuned" in open(csv_path).read()
    assert leaderboard.export_parquet(Context.open()).endswith(".parquet")
    assert leaderboard.export_dpo(Context.open()).endswith(".jsonl")  # imported votes have no answers: empty, with a warning


def test_leaderboard_tab_runs_the_llm_judge(fake_llm):
    import gradio as gr

    from ftassist.arena import models
    from ftassist.ui import leaderboard
    from test_judge import prefers_good

    store = store_mod.get_store()
    models.add_model(store, "hf", "Base", {"model": "org/base"})
    models.add_model(store, "openai_compatible", "Referee", {"base_url": fake_llm.base_url, "model": "judge"})
    for i in range(4):
        bid = battles.add_battle(store, f"Q{i}?", "tuned", "base", "a good answer", "a poor answer")
        view = battles._serve(store, bid, f"Q{i}?", "a good answer", "a poor answer", voter="u")
        battles.vote(store, view.token, "u", "B" if view.answer_a == "a good answer" else "A")  # the human disagrees
    assert leaderboard.judge_choices(Context.open())["choices"] == [("Referee", "referee")]  # API models only
    with pytest.raises(gr.Error, match="Pick the judge"):
        leaderboard.run_judge(Context.open(), None, False, False)
    fake_llm.judge = prefers_good
    summary, table = leaderboard.run_judge(Context.open(), "referee", False, False, 100)
    assert "4 battles judged" in summary and "Agreement with human votes: **0.0%** over 4 votes" in summary
    assert list(table["model"]) == ["tuned", "Base"] and list(table["wins"]) == [4, 0]  # display names
    assert store.query_rows("SELECT count(*) FROM votes")[0][0] == 4  # verdicts never become votes
    summary, _ = leaderboard.run_judge(Context.open(), "referee", False, False, 100)
    assert "Nothing new to judge" in summary
