import json

import pandas as pd
import pytest

from ftassist import store as store_mod
from ftassist.arena import battles
from ftassist.cli import main


def _csv(tmp_path, text):
    path = tmp_path / "votes.csv"
    path.write_text(text)
    return str(path)


def test_leaderboard_json_from_the_cli(tmp_path, capsys):
    rows = "model_a,model_b,winner\n" + "tuned,base,model_a\n" * 12 + "tuned,base,model_b\n" * 4 + "base,tuned,tie\n" * 2
    assert main(["arena", "import-votes", _csv(tmp_path, rows)]) == 0
    assert "18 votes imported" in capsys.readouterr().out
    assert main(["arena", "leaderboard", "--json", "--rounds", "100"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in board] == ["tuned", "base"]
    for r in board:
        assert {"model", "rating", "ci_low", "ci_high", "wins", "losses", "ties", "votes"} <= set(r)
        assert r["ci_low"] <= r["rating"] <= r["ci_high"]
    assert (board[0]["wins"], board[0]["losses"], board[0]["ties"], board[0]["votes"]) == (12, 4, 2, 18)
    assert main(["arena", "leaderboard", "--rounds", "50"]) == 0
    assert "tuned" in capsys.readouterr().out


def test_import_votes_bad_lines_exit_code(tmp_path, capsys):
    path = _csv(tmp_path, "model_a,model_b,winner\na,b,model_a\na,b,left\n")
    assert main(["arena", "import-votes", path]) == 1
    err = capsys.readouterr().err
    assert "line 3: winner 'left'" in err and "Nothing imported" in err
    assert main(["arena", "import-votes", "--skip-bad", path]) == 1
    assert "1 votes imported" in capsys.readouterr().out
    assert main(["arena", "import-votes", str(tmp_path / "missing.csv")]) == 2
    assert "No file at" in capsys.readouterr().err


def test_exports_from_the_cli(tmp_path, capsys):
    st = store_mod.get_store()
    bid = battles.add_battle(st, "Q?", "m1", "m2", "good", "bad")
    view = battles._serve(st, bid, "Q?", "good", "bad", voter="u")
    battles.vote(st, view.token, "u", "A" if view.answer_a == "good" else "B")
    assert main(["arena", "export-votes", "--format", "parquet", "--out", str(tmp_path / "v.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "v.parquet")) == 1
    assert main(["arena", "export-votes", "--out", str(tmp_path / "v.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "v.csv")) == 1
    assert main(["arena", "export-dpo", "--out", str(tmp_path / "dpo.jsonl")]) == 0
    pair = json.loads((tmp_path / "dpo.jsonl").read_text())
    assert pair["chosen"][0]["content"] == "good" and pair["rejected"][0]["content"] == "bad"
    capsys.readouterr()


def test_add_model_and_generate_errors_are_one_line(tmp_path, capsys, fake_llm):
    assert main(["arena", "add-model", "--kind", "openai_compatible", "--name", "Nobody home",
                 "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 2
    assert "Not added" in capsys.readouterr().err  # the endpoint did not answer: refused at once
    assert main(["arena", "add-model", "--kind", "openai_compatible", "--name", "Local",
                 "--base-url", fake_llm.base_url, "--model", "base"]) == 0
    assert capsys.readouterr().out.strip() == "local"
    assert main(["arena", "add-model", "--kind", "openai", "--name", "Bad", "--config", "{\"api_key\": \"x\"}"]) == 2
    assert "never stores API keys" in capsys.readouterr().err
    assert main(["arena", "models"]) == 0
    listed = capsys.readouterr().out
    assert "Local" in listed and "Nobody" not in listed
    prompts = tmp_path / "p.txt"
    prompts.write_text("hi\n")
    assert main(["arena", "generate", "--models", "local", "nope", "--prompts", str(prompts)]) == 2
    assert "No model 'nope'" in capsys.readouterr().err


def test_generate_from_the_cli_with_a_local_server(tmp_path, capsys, fake_llm):
    fake_llm.models = list(fake_llm.models) + ["c-1", "c-2"]
    for i in (1, 2):
        assert main(["arena", "add-model", "--kind", "openai_compatible", "--name", f"Cli {i}",
                     "--base-url", fake_llm.base_url, "--model", f"c-{i}"]) == 0
    valid = tmp_path / "valid.jsonl"
    valid.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"},
                                                        {"role": "assistant", "content": f"A{i}"}]})
                               for i in range(5)) + "\n")
    assert main(["arena", "generate", "--models", "Cli 1", "cli-2", "--prompts", str(valid), "-n", "3",
                 "--temperature", "0"]) == 0
    assert "3 battles stored (0 flagged)" in capsys.readouterr().out
    view = battles.next_battle(store_mod.get_store(), "someone")
    assert view is not None and view.prompt.startswith("Q")


def test_judge_from_the_cli(tmp_path, capsys, fake_llm, tiny_model_dir):
    from test_judge import prefers_good

    st = store_mod.get_store()
    for i in range(6):
        bid = battles.add_battle(st, f"Q{i}?", "tuned", "base", "a good answer", "a poor answer")
        view = battles._serve(st, bid, f"Q{i}?", "a good answer", "a poor answer", voter="u")
        battles.vote(st, view.token, "u", "A" if view.answer_a == "a good answer" else "B")  # the human agrees
    fake_llm.judge = prefers_good
    wrong = ["arena", "judge", "--model", "no-such-judge", "--base-url", fake_llm.base_url, "--rounds", "50"]
    assert main(wrong) == 1  # every call failed: nothing stored, a line per battle on stderr
    captured = capsys.readouterr()
    assert "0 battles judged" in captured.out and "not found" in captured.err
    assert st.query_rows("SELECT count(*) FROM judge_verdicts")[0][0] == 0
    args = ["arena", "judge", "--model", "judge", "--base-url", fake_llm.base_url, "--rounds", "50"]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["judge"], out["judged"], out["failed"]) == ("judge", 6, 0)
    assert out["agreement"]["agreement"] == 1.0 and out["agreement"]["n_pairs"] == 6
    assert [r["model"] for r in out["leaderboard"]] == ["tuned", "base"]
    assert main(args) == 0  # judged already: nothing asked again, figures still shown
    text = capsys.readouterr().out
    assert "Nothing new to judge" in text and "Agreement with human votes: 100.0%" in text and "tuned" in text

    assert main(["arena", "judge", "--judge", "nobody"]) == 2
    assert "No model 'nobody'" in capsys.readouterr().err
    assert main(["arena", "add-model", "--kind", "hf", "--name", "Local HF", "--model", str(tiny_model_dir)]) == 0
    capsys.readouterr()
    assert main(["arena", "judge", "--judge", "Local HF"]) == 2
    assert "must be an API model" in capsys.readouterr().err
    assert main(["arena", "judge"]) == 2
    assert "Pick the judge" in capsys.readouterr().err


def _voter_question(st, prompt, voter):
    """A voter's own question as the voting page stores it (answered, pending review) and that voter's vote."""
    bid = battles.add_battle(st, prompt, "m1", "m2", f"first answer to {prompt}", f"second answer to {prompt}",
                             source="voter")
    st.execute("UPDATE battles SET review = 'pending' WHERE id = ?", [bid])
    view = battles._serve(st, bid, prompt, "x", "y", voter=voter)
    assert battles.vote(st, view.token, voter, "A").flagged  # held back until reviewed
    return bid


def test_voters_questions_are_reviewed_from_the_cli(capsys):
    st = store_mod.get_store()
    kind = _voter_question(st, "What is a kind word?\nSay it twice.", "asker")
    spam = _voter_question(st, "BUY CHEAP PILLS", "spammer")
    assert main(["arena", "prompts", "--json"]) == 0
    pending = json.loads(capsys.readouterr().out)
    assert [p["battle_id"] for p in pending] == [kind, spam]
    assert pending[0]["prompt"] == "What is a kind word?\nSay it twice." and pending[0]["votes"] == 1
    assert pending[0]["answer_a"].startswith("first answer") and pending[0]["answer_b"].startswith("second answer")
    assert main(["arena", "prompts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{kind}\t") and lines[0].endswith("What is a kind word? Say it twice.")
    assert "2 question(s) awaiting review" in lines[-1]

    assert main(["arena", "review", kind, "--approve"]) == 0
    assert "Approved: What is a kind word? Say it twice. (1 vote(s) on it count)" in capsys.readouterr().out
    assert main(["arena", "review", spam, "--reject"]) == 0
    assert "Rejected: BUY CHEAP PILLS (0 vote(s) on it count)" in capsys.readouterr().out
    assert main(["arena", "prompts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["arena", "prompts", "--review", "approved", "--json"]) == 0
    assert [p["battle_id"] for p in json.loads(capsys.readouterr().out)] == [kind]
    assert st.query_rows("SELECT count(*) FROM votes WHERE flagged_reason IS NULL") == [(1,)]
    assert st.query_rows("SELECT review FROM battles WHERE id = ?", [spam]) == [("rejected",)]


def test_reviewing_an_unknown_question_or_without_a_decision_is_one_line(capsys):
    assert main(["arena", "review", "not-a-battle", "--approve"]) == 2
    err = capsys.readouterr().err
    assert "No voter's prompt with battle id 'not-a-battle'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exited:
        main(["arena", "review", "some-id"])
    assert exited.value.code == 2 and "one of the arguments --approve --reject is required" in capsys.readouterr().err
    assert main(["arena", "prompts"]) == 0
    assert "No voters' questions pending." in capsys.readouterr().out
