import multiprocessing as mp

import pytest

from ftassist import config
from ftassist.migrations import all_migrations
from ftassist.store import Store, StoreLockedError, get_store


def test_data_dir_follows_ftassist_home(ftassist_home):
    assert config.data_dir() == ftassist_home.resolve()
    assert config.db_path().parent == ftassist_home.resolve()


def test_migrations_apply_once_and_record_versions(ftassist_home):
    store = get_store()
    expected = {name: len(scripts) for name, scripts in all_migrations().items()}
    assert store.schema_versions() == expected
    store.execute("INSERT INTO datasets (id, name, path) VALUES ('k', 'n', 'p')")
    store.close()
    again = Store(config.db_path())  # reopening must not re-run (or fail on) applied scripts
    assert again.schema_versions() == expected
    assert again.query("SELECT name FROM datasets WHERE id = 'k'") == [{"name": "n"}]
    again.close()


def test_transaction_rolls_back_on_error(ftassist_home):
    store = get_store()
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            con.execute("INSERT INTO datasets (id, name, path) VALUES ('a', 'n', 'p')")
            raise RuntimeError("boom")
    assert store.query("SELECT * FROM datasets") == []


def _open_in_child(path, queue):
    try:
        Store(path)
        queue.put("opened")
    except StoreLockedError as exc:
        queue.put(f"locked: {exc}")


def test_second_process_gets_a_clear_error(ftassist_home):
    store = get_store()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_open_in_child, args=(str(store.path), queue))
    child.start()
    child.join(60)
    message = queue.get(timeout=5)
    assert message.startswith("locked:")
    assert "another ftassist process" in message


def test_journaled_rows_are_inserted_once_by_the_next_process_to_open_the_database(ftassist_home):
    from ftassist.store import journal_dir, journal_row

    row = {"id": "d1", "name": "a.jsonl", "path": "/x/a.jsonl", "format": "chat", "n_examples": 3, "n_errors": 0,
           "report_json": "{}", "created_at": "2026-11-30 05:00:00"}
    journal_row(ftassist_home, "datasets", row)
    journal_row(ftassist_home, "datasets", dict(row, id="d2", name="b.jsonl"))
    with open(journal_dir(ftassist_home) / "datasets.jsonl", "a") as fh:
        fh.write('{"id": "cut by a cra')  # a line a crash left half written
    store = Store(config.db_path())
    assert [r["name"] for r in store.query("SELECT name FROM datasets ORDER BY id")] == ["a.jsonl", "b.jsonl"]
    assert str(store.query("SELECT created_at FROM datasets WHERE id = 'd1'")[0]["created_at"]) == "2026-11-30 05:00:00"
    assert not list(journal_dir(ftassist_home).iterdir())  # taken in, then removed
    # a file left between insert and unlink (a crash) is taken again without doubling anything
    journal_row(ftassist_home, "datasets", row)
    (journal_dir(ftassist_home) / "datasets.jsonl").rename(journal_dir(ftassist_home) / "datasets.1.2.ingesting")
    assert store.ingest_journal() == 0
    assert store.query("SELECT count(*) AS n FROM datasets")[0]["n"] == 2
    store.close()
    with pytest.raises(ValueError):
        journal_row(ftassist_home, "votes", {})


def test_a_command_that_only_records_a_check_never_loads_duckdb(ftassist_home, tmp_path):
    import subprocess
    import sys

    from ftassist.usecases.planning import SAMPLE_PATH

    data = tmp_path / "chat.jsonl"
    data.write_bytes(SAMPLE_PATH.read_bytes())
    probe = ("import sys; from ftassist.cli import main; code = main(['check', sys.argv[1], '--json']); "
             "print('duckdb' in sys.modules, file=sys.stderr); sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", probe, str(data)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "FTASSIST_HOME": str(ftassist_home)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == "False"
    from ftassist.usecases import data as data_cases
    from ftassist.usecases.context import Context

    listed = data_cases.list_datasets(Context.open())
    assert [d.name for d in listed] == ["chat.jsonl"]
