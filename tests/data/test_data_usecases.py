"""The Data use cases: a check is remembered and listed back, a Hub id and a local file take one road,
Fix & split validates its fraction, and `ftassist datasets` shows what was checked."""

from __future__ import annotations

import json

import duckdb
import pytest

from ftassist.migrations import core
from ftassist.store import Store, StoreLockedError
from ftassist.usecases import data, registry
from ftassist.usecases.context import Context, Settings, UseCaseError
from tests.data import corpus


@pytest.fixture
def ctx(tmp_path):
    store = Store(tmp_path / "home" / "ftassist.duckdb")
    yield Context(settings=Settings(data_dir=tmp_path / "home"), _store=store)
    store.close()


def _dataset(tmp_path, n=12, bad_lines=(), name="chats.jsonl"):
    lines = [json.dumps(corpus.chat(i)) for i in range(n)]
    for index in bad_lines:
        lines.insert(index, json.dumps({"messages": [{"role": "user", "content": "no answer"}]}))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_check_through_the_registry_is_recorded_and_listed_back(ctx, tmp_path):
    long = json.dumps({"messages": [{"role": "user", "content": "word " * 33_000},
                                    {"role": "assistant", "content": "ok."}]})
    path = _dataset(tmp_path, bad_lines=(3,))
    path.write_text(path.read_text() + long + "\n")
    result = registry.call(ctx, "check_dataset", {"path": str(path), "model": "gpt-4.1-nano-2025-04-14"})
    assert result.path == str(path) and result.dataset_id and result.note == ""
    report = result.report
    assert report["n_records"] == 14 and report["n_examples"] == 13 and result.n_errors == 1
    assert report["tokens"]["limit"] == 32_768 and report["tokens"]["over_limit"] == [14]  # the model's own limit

    other = _dataset(tmp_path, n=20, name="other.jsonl")
    second = data.check_dataset(ctx, str(other))
    listed = registry.to_jsonable(registry.call(ctx, "list_datasets", {}))
    assert [d["id"] for d in listed] == [second.dataset_id, result.dataset_id]  # newest first
    first = listed[1]
    assert (first["name"], first["path"], first["format"]) == ("chats.jsonl", str(path), "chat")
    assert (first["n_examples"], first["n_errors"], first["model"]) == (13, 1, "gpt-4.1-nano-2025-04-14")
    assert first["exists"] is True and first["checked_at"]
    assert [d.id for d in data.list_datasets(ctx, limit=1)] == [second.dataset_id]
    path.unlink()
    assert data.list_datasets(ctx)[1].exists is False
    stored = ctx.store.query("SELECT report_json FROM datasets WHERE id = ?", [result.dataset_id])[0]
    assert "tokens" not in json.loads(stored["report_json"])  # the bulky per-example lists stay out
    with pytest.raises(UseCaseError, match="at least 1"):
        data.list_datasets(ctx, limit=0)


def test_an_unreadable_file_is_one_clear_refusal_and_not_recorded(ctx, tmp_path):
    with pytest.raises(UseCaseError, match="no such file"):
        data.check_dataset(ctx, str(tmp_path / "missing.jsonl"))
    binary = tmp_path / "x.parquet"
    binary.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(UseCaseError, match="Parquet"):
        data.check_dataset(ctx, str(binary))
    with pytest.raises(UseCaseError, match="at least 1"):
        data.check_dataset(ctx, str(_dataset(tmp_path)), context_limit=0)
    assert data.list_datasets(ctx) == []


def test_a_hub_id_is_fetched_into_the_uploads_folder_and_named_by_its_id(ctx, tmp_path, monkeypatch):
    from ftassist.data import load

    fetched = []

    def fake_hub(name, split="train", out_dir=None, config=None):
        fetched.append((name, out_dir))
        return _dataset(out_dir, n=15, name="org_name_train.jsonl")

    monkeypatch.setattr(load, "load_hub_dataset", fake_hub)
    steps = []
    result = data.check_dataset(ctx, "hf:org/name", progress=lambda fraction, desc: steps.append(desc))
    assert fetched == [("org/name", ctx.settings.uploads_dir)]
    assert result.report["n_examples"] == 15 and result.path.startswith(str(ctx.settings.uploads_dir))
    assert steps[0] == "fetching org/name from the Hugging Face Hub" and steps[-1] == "done"
    assert data.list_datasets(ctx)[0].name == "hf:org/name"
    data.check_dataset(ctx, "org/other")  # not a local file, a slash and no extension: also an id
    assert fetched[-1][0] == "org/other"


def test_keep_copy_puts_the_file_under_the_data_dir(ctx, tmp_path):
    path = _dataset(tmp_path)
    result = data.check_dataset(ctx, str(path), keep_copy=True)
    kept = ctx.settings.uploads_dir / result.path.rsplit("/", 1)[1]
    assert result.path == str(kept) and kept.name.endswith("-chats.jsonl")
    assert kept.read_text() == path.read_text()


def test_a_busy_database_keeps_the_report_and_says_it_was_not_recorded(tmp_path):
    class Busy:
        def execute(self, *args):
            raise StoreLockedError("The database is in use by another ftassist process.")

    busy = Context(settings=Settings(data_dir=tmp_path / "home"), _store=Busy())
    result = data.check_dataset(busy, str(_dataset(tmp_path)))
    assert result.dataset_id is None and result.report["n_examples"] == 12
    assert "not added to the list" in result.note and "in use" in result.note


def test_clean_validates_the_fraction_and_writes_under_the_data_dir(ctx, tmp_path):
    path = _dataset(tmp_path, n=20, bad_lines=(2,))
    with pytest.raises(UseCaseError, match="validation fraction must be at least 0 and below 1"):
        registry.call(ctx, "clean_dataset", {"path": str(path), "valid_fraction": 1.0})
    result = registry.call(ctx, "clean_dataset", {"path": str(path), "valid_fraction": 0.25, "seed": 7})
    assert str(result.folder).startswith(str(ctx.settings.clean_dir))
    train = open(result.train_path).read().splitlines()
    valid = open(result.valid_path).read().splitlines()
    assert (len(train), len(valid)) == (result.n_train, result.n_valid) == (15, 5)
    assert result.n_in == 21 and result.n_dropped_invalid == 1 and not set(train) & set(valid)
    split = data.split_of(result)
    assert (split.train, split.valid, split.folder, split.n_train, split.n_valid) == (
        str(result.train_path), str(result.valid_path), str(result.folder), 15, 5)
    as_json = registry.to_jsonable(result)
    assert as_json["n_kept"] == 20 and as_json["exports"].keys() == {"alpaca", "sharegpt"}
    chosen = tmp_path / "chosen"
    assert data.clean_dataset(ctx, str(path), out=str(chosen)).folder == chosen
    assert (chosen / "train.jsonl").is_file()


def test_show_record_reads_the_line_of_any_file_type(ctx, tmp_path):
    path = _dataset(tmp_path, bad_lines=(4,))
    assert "no answer" in data.show_record(ctx, str(path), 5).text
    assert data.show_record(ctx, str(path), 99).text == "(no record starts at this line)"
    array = tmp_path / "chats.json"
    array.write_text(json.dumps([corpus.chat(0), corpus.chat(1)], indent=1))
    second_line = next(i for i, text in enumerate(array.read_text().splitlines(), 1) if text == " {" and i > 2)
    assert json.loads(data.show_record(ctx, str(array), second_line).text) == corpus.chat(1)
    with pytest.raises(UseCaseError, match="start at 1"):
        data.show_record(ctx, str(path), 0)


def test_the_unused_settings_table_is_dropped_by_a_new_migration(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))  # a database made by the first release: core at version 1
    con.execute("CREATE TABLE schema_versions (component VARCHAR PRIMARY KEY, version INTEGER NOT NULL,"
                " applied_at TIMESTAMP DEFAULT current_timestamp)")
    con.execute(core.MIGRATIONS[0])
    con.execute("INSERT INTO schema_versions (component, version) VALUES ('core', 1)")
    con.execute("INSERT INTO datasets (id, name, path) VALUES ('d1', 'kept.jsonl', '/x/kept.jsonl')")
    con.close()
    store = Store(path)
    try:
        tables = {name for (name,) in store.query_rows("SELECT table_name FROM information_schema.tables")}
        assert "settings" not in tables and "datasets" in tables
        assert store.schema_versions()["core"] == len(core.MIGRATIONS) == 2
        assert store.query("SELECT name FROM datasets") == [{"name": "kept.jsonl"}]  # the data survives
    finally:
        store.close()


def test_datasets_command_lists_what_check_recorded(tmp_path, capsys):
    from ftassist.cli import main

    assert main(["datasets"]) == 0
    assert "No dataset checked yet" in capsys.readouterr().out
    path = _dataset(tmp_path, bad_lines=(1,))
    assert main(["check", str(path), "--json"]) == 1  # the exit code still says "has errors"
    capsys.readouterr()
    assert main(["datasets", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["path"], row["n_examples"], row["n_errors"]) == (str(path), 12, 1)
    assert main(["datasets"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split() == ["checked", "at", "examples", "errors", "format", "name", "path"]
    assert "chats.jsonl" in text[1] and str(path) in text[1] and " 12 " in text[1]
    assert main(["datasets", "--limit", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
