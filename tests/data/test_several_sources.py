"""Several files (and Hub datasets) checked and split as one dataset, every record keeping its file and line:
through the CLI (a real subprocess), the use cases (a real DuckDB) and the Data tab's handlers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ftassist.store import Store
from ftassist.usecases import data
from ftassist.usecases.context import Context, Settings, UseCaseError
from tests.data import corpus


def run(*args):
    return subprocess.run([sys.executable, "-m", "ftassist", *args], capture_output=True, text=True, timeout=180)


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"How do I change the delivery address of order {i}?"},
                         {"role": "assistant", "content": f"Open order {i}, press Edit and type the new address."}]}


@pytest.fixture
def three(tmp_path):
    """a.jsonl: 15 chats, a broken line (16) and an instruction record (17: another format within the file);
    b.csv: 12 instruction rows (its own format) and an empty row on line 14;
    c.jsonl: 10 chats whose first 5 repeat a.jsonl's lines 11-15."""
    a = corpus.write_jsonl(tmp_path, "a.jsonl", [_chat(i) for i in range(15)])
    a.write_text(a.read_text() + "{broken json\n" + json.dumps({"instruction": "x", "output": "y"}) + "\n")
    b = corpus.write_csv(tmp_path, "b.csv", ["instruction", "output"],
                         [[f"Translate the word number {i} into French", f"mot {i}"] for i in range(12)] + [["", ""]])
    c = corpus.write_jsonl(tmp_path, "c.jsonl", [_chat(i) for i in range(10, 20)])
    return a, b, c


@pytest.fixture
def ctx(tmp_path):
    store = Store(tmp_path / "home" / "ftassist.duckdb")
    yield Context(settings=Settings(data_dir=tmp_path / "home"), _store=store)
    store.close()


def _where(issues: list[dict]) -> set[tuple]:
    return {(issue.get("source"), issue["line"], issue["code"]) for issue in issues}


# -- the CLI ------------------------------------------------------------------------------------------------
def test_cli_check_of_three_files_names_each_issue_by_file_and_line(three):
    a, b, c = three
    res = run("check", str(a), str(b), str(c), "--json")
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    assert [(s["name"], s["format"], s["n_records"], s["n_examples"]) for s in report["sources"]] == [
        ("a.jsonl", "chat", 17, 15), ("b.csv", "instruction", 13, 12), ("c.jsonl", "chat", 10, 10)]
    assert report["n_records"] == 40 and report["n_examples"] == 37 and report["format"] == "mixed"
    assert _where(report["errors"]) == {("a.jsonl", 16, "invalid_json"), ("a.jsonl", 17, "mixed_formats"),
                                        ("b.csv", 14, "missing_content")}
    mixed = next(e for e in report["errors"] if e["code"] == "mixed_formats")
    assert "(from a.jsonl:1)" in mixed["message"]  # the rule holds within a.jsonl, and says so in its terms
    # two files in two formats are not a failure of consistency: each is judged in its own format
    consistent = next(item for item in report["checklist"] if item["id"] == "consistent")
    assert consistent["status"] == "pass" and "one format per file" in consistent["summary"]
    # duplicates are found across files, and the evidence says where both copies are
    diverse = next(item for item in report["checklist"] if item["id"] == "diverse")
    assert "5 exact duplicate examples" in diverse["summary"]
    assert all(ev["source"] in ("a.jsonl", "b.csv", "c.jsonl") for ev in diverse["evidence"])
    assert len(report["tokens"]["per_example"]) == 37

    text = run("check", str(a), str(b), str(c))
    assert text.returncode == 1
    assert "3 sources: 40 records, 37 valid examples, format mixed" in text.stdout
    assert "  b.csv: 13 records, 12 valid, format instruction" in text.stdout
    assert "error a.jsonl:16: [invalid_json]" in text.stdout and "error b.csv:14: [missing_content]" in text.stdout
    assert "error line" not in text.stdout


def test_cli_check_of_one_file_keeps_its_plain_line_output(three):
    a, _, _ = three
    res = run("check", str(a))
    assert res.returncode == 1
    assert "error line 16: [invalid_json]" in res.stdout and "a.jsonl:16" not in res.stdout
    report = json.loads(run("check", str(a), "--json").stdout)
    assert report["sources"] == [] and {e["source"] for e in report["errors"]} == {None}


def test_cli_clean_of_three_files_writes_one_split_and_drops_duplicates_across_them(three, tmp_path):
    a, b, c = three
    out = tmp_path / "split"
    res = run("clean", str(a), str(b), str(c), "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["n_in"] == 40 and result["n_dropped_invalid"] == 3 and result["n_dropped_duplicates"] == 5
    assert result["n_train"] + result["n_valid"] == 32
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert [(d["source"], d["line"], d["reason"]) for d in dropped] == [
        ("a.jsonl", 16, "invalid"), ("a.jsonl", 17, "invalid"), ("b.csv", 14, "invalid"),
        *[("c.jsonl", line, "duplicate") for line in range(1, 6)]]
    assert dropped[3]["duplicate_of"] == "a.jsonl:11" and dropped[3]["detail"] == "exact duplicate of a.jsonl:11"
    written = [json.loads(line) for name in ("train.jsonl", "valid.jsonl") for line in (out / name).read_text().splitlines()]
    texts = {row["messages"][-1]["content"] for row in written}
    assert "mot 3" in texts and "Open order 19, press Edit and type the new address." in texts  # every file is in


def test_cli_refuses_pairs_combined_with_examples_in_one_line(three, tmp_path):
    a, _, _ = three
    pairs = corpus.write_jsonl(tmp_path, "pairs.jsonl", [
        {"prompt": f"Question {i}?", "chosen": f"Good answer {i}.", "rejected": f"Bad {i}."} for i in range(12)])
    res = run("check", str(a), str(pairs))
    assert res.returncode == 2
    assert "pairs.jsonl holds preference pairs and a.jsonl holds examples" in res.stderr
    assert "Traceback" not in res.stderr


# -- the use cases ------------------------------------------------------------------------------------------
def test_files_of_pairs_combine_into_one_check_of_pairs(ctx, tmp_path):
    first = corpus.write_jsonl(tmp_path, "one.jsonl", [
        {"prompt": f"Question {i}?", "chosen": f"A careful answer {i}.", "rejected": f"No {i}."} for i in range(12)])
    second = corpus.write_jsonl(tmp_path, "two.jsonl", [
        {"prompt": f"Question {i}?", "chosen": f"A careful answer {i}.", "rejected": f"No {i}."} for i in range(10, 14)])
    report = data.check_dataset(ctx, str(first), paths=[str(second)]).report
    assert report["format"] == "preference" and report["n_examples"] == 16
    assert [s["format"] for s in report["sources"]] == ["trl", "trl"]
    assert report["preference"]["duplicate_lines"] == [["two.jsonl:1", "one.jsonl:11"], ["two.jsonl:2", "one.jsonl:12"]]
    warned = {(w["source"], w["line"]) for w in report["warnings"] if w["code"] == "duplicate_pair"}
    assert warned == {("two.jsonl", 1), ("two.jsonl", 2)}


def test_a_check_of_several_sources_is_recorded_with_its_sources(ctx, three, tmp_path, monkeypatch):
    import datasets

    a, b, _ = three
    asked = {}

    def load_dataset(name, config=None, split=None, **kw):
        asked.update(name=name, config=config, split=split)
        return [_chat(i) for i in range(100, 112)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr("ftassist.hub_reach.hub_reachable", lambda timeout=3.0: True)  # as faked as the download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the stand-in above answers; nothing is fetched
    result = data.check_dataset(ctx, str(a), paths=[str(b), "hf:org/support:en@validation"])
    assert asked == {"name": "org/support", "config": "en", "split": "validation"}
    sources = result.report["sources"]
    assert [s["name"] for s in sources] == ["a.jsonl", "b.csv", "hf:org/support:en@validation"]
    assert sources[2]["n_examples"] == 12 and sources[2]["path"].startswith(str(ctx.settings.uploads_dir))
    listed = data.list_datasets(ctx)[0]
    assert listed.name == "a.jsonl + b.csv + hf:org/support:en@validation" and listed.n_examples == 39
    stored = json.loads(ctx.store.query("SELECT report_json FROM datasets")[0]["report_json"])
    assert [s["path"] for s in stored["sources"]] == [str(a), str(b), sources[2]["path"]]
    assert _where(stored["errors"]) == {("a.jsonl", 16, "invalid_json"), ("a.jsonl", 17, "mixed_formats"),
                                        ("b.csv", 14, "missing_content")}


def test_a_utf16_file_among_others_is_read_decoded_and_named(ctx, three, tmp_path):
    a, _, _ = three
    wide = tmp_path / "wide.jsonl"
    wide.write_bytes(b"\xff\xfe" + "".join(json.dumps(_chat(i)) + "\n" for i in range(30, 42)).encode("utf-16-le"))
    report = data.check_dataset(ctx, str(a), paths=[str(wide)]).report
    assert report["sources"][1]["n_examples"] == 12
    assert ("wide.jsonl", 0, "utf16_file") in _where(report["errors"])
    with pytest.raises(UseCaseError, match="missing.jsonl"):
        data.check_dataset(ctx, str(a), paths=[str(tmp_path / "missing.jsonl")])


def test_clean_use_case_of_several_sources(ctx, three):
    a, b, c = three
    result = data.clean_dataset(ctx, str(a), paths=[str(b), str(c)], valid_fraction=0.2, seed=3)
    assert result.n_train + result.n_valid == 32 and result.n_dropped_duplicates == 5
    assert result.folder.is_relative_to(ctx.settings.clean_dir)


# -- the Data tab -------------------------------------------------------------------------------------------
def test_data_tab_checks_several_uploads_as_one_dataset_and_splits_them(three):
    from ftassist.ui import data_tab
    from ftassist.usecases.session import Session

    a, b, c = three
    app = Context.open()
    quiet = lambda *args, **kwargs: None  # noqa: E731
    session, summary, checklist, errors, _, fix_btn = data_tab.check_dataset(
        app, [str(a), str(b), str(c)], "", "gpt-4o-mini-2024-07-18", Session(), progress=quiet)
    report = session.dataset.report
    assert [s["name"] for s in report["sources"]] == ["a.jsonl", "b.csv", "c.jsonl"]
    assert all(s["path"] != str(p) for s, p in zip(report["sources"], three))  # uploads kept under the data dir
    assert "From **3 sources**" in summary and "`b.csv`: 13 records, 12 valid, format **instruction**" in summary
    assert {"a.jsonl:16", "a.jsonl:17", "b.csv:14"} <= set(errors["line"])
    assert "<b>a.jsonl:2</b>" in checklist and "<b>line " not in checklist  # evidence names its file
    row = list(errors["line"]).index("b.csv:14")
    preview = data_tab.show_preview(app, session, type("Select", (), {"index": [row, 0]})())
    assert '"instruction": ""' in preview  # the record of b.csv, not line 14 of a.jsonl

    session, message, files = data_tab.fix_and_split(app, 0.1, 42, session, progress=quiet)
    assert "5 exact duplicates" in message and session.split.n_train + session.split.n_valid == 32
